"""``garrison-agent``: placeholder entry point until the agent lands (issue 3)."""

from __future__ import annotations

import sys


def main() -> None:
    sys.stderr.write("garrison-agent: the agent is not built yet (see issue 3)\n")
    sys.exit(3)
