"""The one version of Garrison: both distributions (``garrison``, and the agent-only
``garrison-agent`` of packaging/agent) and the .deb packages take theirs from here."""

__version__ = "0.1.0"
