"""Garrison: central management server for endpoint-security agents, and its agent."""

from importlib.metadata import PackageNotFoundError, version

# pyproject.toml holds the version; this reads what was installed from it.
try:
    __version__ = version("garrison")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
