"""Inputs of the launch digest, read in fixed-size chunks so memory stays flat on multi-GB files.

A source is a path (``str`` or ``os.PathLike``) or the content itself (``bytes``, ``bytearray``,
``memoryview``). Paths are checked up front so a bad one fails with a clear message before any large
file is hashed.
"""

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Union

from csvverify.errors import InputError

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]
ProgressCallback = Callable[[int, int], None]

CHUNK_SIZE = 1 << 20


@dataclass(frozen=True)
class Blob:
    """One input: a file on disk or bytes in memory. ``size`` is None for a pipe or device."""

    role: str
    name: str
    path: Path | None = None
    data: bytes | None = None
    size: int | None = None

    @property
    def label(self) -> str:
        return f"{self.role} {self.name}"


def open_blob(source: Source, role: str) -> Blob:
    """Check that ``source`` can be read as the ``role`` input (firmware, kernel, ...)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        return Blob(role, "(given as bytes)", data=data, size=len(data))
    path = Path(source)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise InputError(f"{role} {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read {role} {path}: {exc.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{role} {path} is a directory, not a file")
    if not os.access(path, os.R_OK):
        raise InputError(f"cannot read {role} {path}: permission denied")
    size = st.st_size if stat.S_ISREG(st.st_mode) else None
    return Blob(role, str(path), path=path, size=size)


class Progress:
    """Adds up bytes read across all inputs and reports ``(done, total)`` to an optional callback."""

    def __init__(self, callback: ProgressCallback | None, total: int):
        self.callback = callback
        self.total = total
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, max(self.total, self.done))


@dataclass(frozen=True)
class StreamInfo:
    size: int
    head: bytes
    tail: bytes


def stream(blob: Blob, sinks: Iterable, progress: Progress | None = None, *, start: int = 0,
           keep_head: int = 0, keep_tail: int = 0) -> StreamInfo:
    """Feed the bytes of ``blob`` from offset ``start`` to every hash context in ``sinks``.

    Returns the number of bytes fed and, when asked, the first ``keep_head`` and last ``keep_tail``
    bytes, taken from the same read so that they describe exactly what was hashed.
    """
    sinks = list(sinks)
    head = bytearray()
    tail = b""
    size = 0
    for chunk in _chunks(blob, start):
        for sink in sinks:
            sink.update(chunk)
        size += len(chunk)
        if len(head) < keep_head:
            head += chunk[: keep_head - len(head)]
        if keep_tail:
            tail = bytes(chunk[-keep_tail:]) if len(chunk) >= keep_tail else (tail + bytes(chunk))[-keep_tail:]
        if progress is not None:
            progress.advance(len(chunk))
    return StreamInfo(size, bytes(head), tail)


def read_all(blob: Blob, limit: int) -> bytes:
    """The whole content of a small input; more than ``limit`` bytes is an error."""
    out = bytearray()
    for chunk in _chunks(blob, 0):
        out += chunk
        if len(out) > limit:
            raise InputError(f"{blob.label} is larger than {limit} bytes")
    return bytes(out)


def _chunks(blob: Blob, start: int):
    if blob.data is not None:
        view = memoryview(blob.data)
        for offset in range(start, len(view), CHUNK_SIZE):
            yield view[offset: offset + CHUNK_SIZE]
        return
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    try:
        with open(blob.path, "rb", buffering=0) as f:
            if start:
                f.seek(start)
            while n := f.readinto(buf):
                yield view[:n]
    except OSError as exc:
        raise InputError(f"cannot read {blob.label}: {exc.strerror or exc}") from None
