"""The block list: what the agent refuses to execute or open (bundle files ``.blk``, the
``blocklist`` kind of the signed content, in the ``ioc`` format of docs/content.md).

``hash:<md5, sha1 or sha256>`` lines go into the engine's sorted hash tables (one buffer
per algorithm, binary search: a million SHA-256 entries are about 40 MB and load without
stalling the other threads, see ``signatures.HashTable``); ``path:`` and ``name:`` lines are
globs on the file's path or name.  Lines starting with ``#`` are comments (the server keeps
each entry's comment there).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from garrison.agent.scan.hashtable import ALGO_BY_LENGTH, HashTable, SignatureError

BLOCK_SUFFIXES = (".blk",)
MAX_GLOBS = 10_000
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _tables() -> dict[str, HashTable]:
    return {"md5": HashTable(16), "sha1": HashTable(20), "sha256": HashTable(32)}


@dataclass
class BlockList:
    tables: dict[str, HashTable] = field(default_factory=_tables)
    paths: list[str] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    hash_count: int = 0

    def __len__(self) -> int:
        return self.hash_count + len(self.paths) + len(self.names)

    @property
    def empty(self) -> bool:
        return len(self) == 0

    def add_hash(self, digest_hex: str, source: str) -> None:
        algo = ALGO_BY_LENGTH.get(len(digest_hex))
        if algo is None:
            raise SignatureError(f"not an MD5, SHA-1 or SHA-256: {digest_hex!r}")
        self.tables[algo].append(bytes.fromhex(digest_hex), -1, source.encode())
        self.hash_count += 1

    def freeze(self) -> None:
        for table in self.tables.values():
            table.freeze()

    def contains(self, algo: str, digest_hex: str) -> bool:
        return any(True for _ in self.tables[algo].find(bytes.fromhex(digest_hex)))

    def match_hashes(self, digests: dict[str, str]) -> str | None:
        """``hash:<digest>`` of the first algorithm listed that matches."""
        for algo in ("sha256", "sha1", "md5"):
            digest = digests.get(algo)
            if digest and self.tables[algo] and self.contains(algo, digest):
                return f"hash:{digest}"
        return None

    def match_path(self, path: str) -> str | None:
        for pattern in self.paths:
            if fnmatch.fnmatchcase(path, pattern):
                return f"path:{pattern}"
        name = path.rsplit("/", 1)[-1]
        for pattern in self.names:
            if fnmatch.fnmatchcase(name, pattern):
                return f"name:{pattern}"
        return None

    def listed(self, sha256s: Iterable[str]) -> list[str]:
        """Those of ``sha256s`` this list names."""
        return [h for h in sha256s if self.tables["sha256"] and self.contains("sha256", h)]


def load_into(blocklist: BlockList, path: Path) -> int:
    """Add one ``.blk`` file's entries; a broken line fails the file (SignatureError naming
    the file and line: the whole content update is refused, the previous one stays)."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise SignatureError(f"{path}: {exc.strerror}") from None
    count = 0
    with handle:
        for number, raw in enumerate(handle, start=1):
            line = raw.strip()
            if not line or line[:1] == b"#":
                continue
            kind, _, value = line.partition(b":")
            try:
                if kind == b"hash" and len(value) in ALGO_BY_LENGTH and set(value) <= _HEX:
                    blocklist.add_hash(value.decode("ascii").lower(), path.stem)
                elif kind in (b"path", b"name") and value:
                    target = blocklist.paths if kind == b"path" else blocklist.names
                    if len(blocklist.paths) + len(blocklist.names) >= MAX_GLOBS:
                        raise SignatureError(f"more than {MAX_GLOBS} path and name entries")
                    target.append(value.decode("utf-8", "surrogateescape"))
                else:
                    raise SignatureError("expected hash:<hex>, path:<glob> or name:<glob>")
            except SignatureError as exc:
                raise SignatureError(f"{path}:{number}: {exc}") from None
            count += 1
    return count
