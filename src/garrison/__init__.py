"""Garrison: central management server for endpoint-security agents, and its agent."""

from garrison._version import __version__

__all__ = ["__version__"]
