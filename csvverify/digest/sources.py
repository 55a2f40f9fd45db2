"""Inputs of the launch digest, read in fixed-size chunks so memory stays flat on multi-GB files.

A source is a path (``str`` or ``os.PathLike``) or the content itself (``bytes``, ``bytearray``,
``memoryview``). Paths are checked up front so a bad one fails with a clear message before any large
file is hashed. A pipe or device has no size to check, so it is read up to a cap
(``UNSIZED_LIMIT``; ``FIRMWARE_UNSIZED_LIMIT`` for the firmware) instead of forever.
"""

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Union

from csvverify.errors import InputError

Source = Union[str, os.PathLike, bytes, bytearray, memoryview]
ProgressCallback = Callable[[int, Union[int, None]], None]

CHUNK_SIZE = 1 << 20
GiB = 1 << 30
# QEMU loads the kernel and initrd below 4 GiB of guest memory, so no real one is larger.
UNSIZED_LIMIT = 4 * GiB
# OVMF images are a few MiB (QEMU's pflash limit is 8 MiB unless max-fw-size raises it).
FIRMWARE_UNSIZED_LIMIT = 64 << 20

CONTENT_TYPES = (bytes, bytearray, memoryview)  # a source given as its content
SOURCE_TYPES = (str, os.PathLike) + CONTENT_TYPES  # ... or as a path


@dataclass(frozen=True)
class Blob:
    """One input: a file on disk or bytes in memory. ``size`` is None for a pipe or device."""

    role: str
    name: str
    path: Path | None = None
    data: bytes | None = None
    size: int | None = None
    limit: int = UNSIZED_LIMIT  # most bytes read when ``size`` is None

    @property
    def label(self) -> str:
        return f"{self.role} {self.name}"


def open_blob(source: Source, role: str, unsized_limit: int = UNSIZED_LIMIT) -> Blob:
    """Check that ``source`` can be read as the ``role`` input (firmware, kernel, ...)."""
    if isinstance(source, CONTENT_TYPES):
        data = bytes(source)
        return Blob(role, "(given as bytes)", data=data, size=len(data))
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"the {role} must be a path (str or os.PathLike) or its content (bytes), "
                        f"not {type(source).__name__}")
    if os.fspath(source) in ("", b""):
        raise InputError(f"the {role} file name is empty", f"give the path of the {role} file")
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
    return Blob(role, str(path), path=path, size=size, limit=unsized_limit)


class Progress:
    """Adds up bytes read across all inputs and reports ``(done, total)`` to an optional callback.

    ``total`` is None when an input is a pipe or device, whose size is known only at its end.
    """

    def __init__(self, callback: ProgressCallback | None, total: int | None):
        self.callback = callback
        self.total = total
        self.done = 0

    def advance(self, n: int) -> None:
        self.done += n
        if self.callback is not None:
            self.callback(self.done, None if self.total is None else max(self.total, self.done))


@dataclass(frozen=True)
class StreamInfo:
    size: int
    head: bytes
    tail: bytes


def stream(blob: Blob, sinks: Iterable, progress: Progress | None = None, *, keep_head: int = 0,
           keep_tail: int = 0) -> StreamInfo:
    """Feed the bytes of ``blob``, in one pass, to every hash context in ``sinks`` (any ``update(chunk)``).

    Returns the number of bytes fed and, when asked, the first ``keep_head`` and last ``keep_tail``
    bytes, taken from the same read so that they describe exactly what was hashed.
    """
    sinks = list(sinks)
    head = bytearray()
    tail = b""
    size = 0
    for chunk in _chunks(blob):
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
    for chunk in _chunks(blob):
        out += chunk
        if len(out) > limit:
            raise InputError(f"{blob.label} is larger than {limit} bytes")
    return bytes(out)


def size_text(n: int) -> str:
    return f"{n // GiB} GiB" if n % GiB == 0 else f"{n >> 20} MiB" if n % (1 << 20) == 0 else f"{n} bytes"


def _chunks(blob: Blob):
    if blob.data is not None:
        view = memoryview(blob.data)
        for offset in range(0, len(view), CHUNK_SIZE):
            yield view[offset: offset + CHUNK_SIZE]
        return
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    read = 0
    try:
        with open(blob.path, "rb", buffering=0) as f:
            while n := f.readinto(buf):
                read += n
                if blob.size is None and read > blob.limit:
                    raise InputError(
                        f"{blob.label} is a pipe or device and gave more than {size_text(blob.limit)}: "
                        f"csvverify stops there, far above the size of any real {blob.role}",
                        f"if it really is larger, save it to a regular file and pass that")
                yield view[:n]
    except OSError as exc:
        raise InputError(f"cannot read {blob.label}: {exc.strerror or exc}") from None
