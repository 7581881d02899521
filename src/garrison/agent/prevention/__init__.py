"""Prevention: exec and open blocking by the signed block list, on-access scanning of
watched paths (fanotify permission events).  See docs/agent.md "Prevention"."""
