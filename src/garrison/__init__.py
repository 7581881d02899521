"""Garrison: central management server for endpoint-security agents, and its agent."""

__version__ = "0.1.0"
