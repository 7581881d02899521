"""Signed self-update (issue 21; docs/agent.md "Self-update"): the versions an
``UpgradeAgent`` job installs under ``<state-dir>/versions/``, the ``current`` pointer, the
trial record, and the launcher that starts the current version and rolls a failed one back.
"""
