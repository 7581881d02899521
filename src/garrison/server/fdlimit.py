"""The open-file limit (RLIMIT_NOFILE): every agent connection being served holds one.

A fleet holds connections open while their answers wait (a long-poll, a telemetry batch
queued for the writer), so the number of descriptors grows with the fleet and its
latency, not with the request rate.  Past the soft limit, accept() fails with EMFILE: the
event loop drops the connections it cannot accept and the agents see resets and timeouts
while the server looks idle (bench/findings.md, issue 20: "the cause found").  Most
systems start a service with a soft limit of 1024 and a much higher hard limit (systemd:
524288); an unprivileged process may raise its soft limit up to the hard one, so the
server does at start (its workers inherit it) and says what it got.
"""

from __future__ import annotations

import contextlib
import resource
from dataclasses import dataclass

# Below this the server says so at start: enough for a few thousand agents at once, not
# for a fleet of 100,000 with its telemetry queued (docs/operations.md, "Sizing").
LOW_LIMIT = 65_536
UNLIMITED_TARGET = 1 << 20


@dataclass(frozen=True)
class OpenFiles:
    before: int  # the soft limit the process was started with
    soft: int  # the soft limit now
    hard: int  # the hard limit (RLIM_INFINITY as -1)

    @property
    def raised(self) -> bool:
        return self.soft > self.before

    @property
    def low(self) -> bool:
        return self.soft != resource.RLIM_INFINITY and self.soft < LOW_LIMIT

    def describe(self) -> str:
        def show(value: int) -> str:
            return "unlimited" if value == resource.RLIM_INFINITY else f"{value:,}"

        if self.raised:
            text = f"open-file limit raised from {show(self.before)} to {show(self.soft)}"
        else:
            text = f"open-file limit {show(self.soft)}"
        text += " (the hard limit)" if self.soft == self.hard else f" (hard {show(self.hard)})"
        if self.low:
            text += (
                f": below {LOW_LIMIT:,}, each agent connection takes one; raise the hard "
                "limit (systemd LimitNOFILE=, ulimit -Hn)"
            )
        return text


def raise_open_files() -> OpenFiles:
    """Soft limit up to the hard limit; a refusal (a platform with a lower ceiling than the
    hard limit, as macOS's OPEN_MAX) keeps the limit the process had."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Linux refuses an unlimited soft limit for descriptors (above fs.nr_open): ask for its
    # default ceiling instead.
    target = hard if hard != resource.RLIM_INFINITY else UNLIMITED_TARGET
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    now = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return OpenFiles(soft, now, hard)
