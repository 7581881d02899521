"""Sorted hash tables: the engine's hash signatures and the block list share them."""

from __future__ import annotations

import heapq
from array import array
from collections.abc import Iterator
from itertools import accumulate

ALGO_BY_LENGTH = {32: "md5", 40: "sha1", 64: "sha256"}


class SignatureError(ValueError):
    """A signature file cannot be used; the message names the file and line."""


# Entries sorted by one C call: while it runs it holds the GIL, and the daemon's other
# threads (a scan going on, check-ins, the sensors) wait.  One sorted() of 1,000,000 digests
# stalled them 1.3 s (bench scenario content); runs of this size take a few milliseconds.
SORT_RUN = 1 << 14


def _sorted_order(digests: list[bytes]) -> list[int]:
    """The indexes of ``digests`` in digest order: runs sorted by short C calls, merged by
    heapq.merge, a Python generator, so other threads get the GIL between its items."""
    key = digests.__getitem__
    runs = [
        sorted(range(start, min(start + SORT_RUN, len(digests))), key=key)
        for start in range(0, len(digests), SORT_RUN)
    ]
    if len(runs) <= 1:
        return runs[0] if runs else []
    return list(heapq.merge(*runs, key=key))


class HashTable:
    """One algorithm's hash signatures.  Appends are pending; :meth:`freeze` (the load does
    it, and the first lookup after an append) sorts them into one digest buffer searched by
    bisection, a size array (-1 = any size) and a name blob with offsets: no object per
    signature once frozen."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._digests = b""
        self._sizes = array("q")
        self._names = b""
        self._name_at = array("Q", [0])
        self._new_digests: list[bytes] = []
        self._new_sizes = array("q")
        self._new_names: list[bytes] = []

    def __len__(self) -> int:
        return len(self._sizes) + len(self._new_sizes)

    def append(self, digest: bytes, size: int, name: bytes) -> None:
        if len(digest) != self.width:
            raise SignatureError(f"a {self.width}-byte digest was expected")
        self._new_digests.append(digest)
        self._new_sizes.append(size)
        self._new_names.append(name)

    def freeze(self) -> None:
        if not self._new_sizes:
            return
        digests = [self._digest(i) for i in range(len(self._sizes))] + self._new_digests
        names = [self._name(i) for i in range(len(self._sizes))] + self._new_names
        sizes = self._sizes + self._new_sizes
        self._new_digests, self._new_sizes, self._new_names = [], array("q"), []
        order = _sorted_order(digests)
        # Comprehensions, not map(): a C call consuming a C iterator never lets another
        # thread run, a Python loop does (see _sorted_order).
        self._digests = b"".join([digests[i] for i in order])
        del digests
        self._sizes = array("q", [sizes[i] for i in order])
        self._names = b"".join([names[i] for i in order])
        self._name_at = array("Q", [0])
        self._name_at.extend(accumulate(len(names[i]) for i in order))

    def _digest(self, i: int) -> bytes:
        return self._digests[i * self.width : (i + 1) * self.width]

    def _name(self, i: int) -> bytes:
        return self._names[self._name_at[i] : self._name_at[i + 1]]

    def find(self, digest: bytes) -> Iterator[tuple[int | None, str]]:
        """(size or None, name) of every signature with this digest."""
        self.freeze()
        low, high = 0, len(self._sizes)
        while low < high:
            mid = (low + high) // 2
            if self._digest(mid) < digest:
                low = mid + 1
            else:
                high = mid
        while low < len(self._sizes) and self._digest(low) == digest:
            size = self._sizes[low]
            yield (None if size < 0 else size), self._name(low).decode("utf-8", "replace")
            low += 1
