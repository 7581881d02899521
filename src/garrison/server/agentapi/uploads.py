"""An uploaded file's body, spooled to a temporary file as it arrives: hashed and measured
on the way, and refused (413) as soon as it passes its cap, so that an agent announcing a
small file cannot stream a large one."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from types import TracebackType

from garrison.server.errors import PayloadTooLargeError
from garrison.server.files.service import CHUNK_BYTES

# Up to this much stays in memory; a larger body goes to a temporary file.
IN_MEMORY = 8 << 20


class Spool:
    def __init__(self) -> None:
        self._file = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY)  # noqa: SIM115
        self._hash = hashlib.sha256()
        self.size = 0

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._file.close()

    def write(self, chunk: bytes, limit: int) -> None:
        self.size += len(chunk)
        if self.size > limit:
            raise PayloadTooLargeError(f"the body passed this upload's limit of {limit} bytes")
        self._hash.update(chunk)
        self._file.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        """The body again, in the stored chunks' size."""
        self._file.seek(0)
        while True:
            data = self._file.read(CHUNK_BYTES)
            if not data:
                return
            yield data
