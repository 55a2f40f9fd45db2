"""Reading evidence files and unwrapping their container into report bytes.

``read_input`` is the only place that opens evidence files: it refuses what is not a regular file and
never reads more than ``MAX_INPUT`` bytes. ``decode_container`` is pure: it recognises raw reports,
4096-byte pages, the csv-rs binary wrapper, rats-tls evidence, JSON evidence (``csvverify.evidence``)
and hex or base64 text of the binary forms.
"""

import base64
import binascii
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from csvverify.errors import InputError
from csvverify.evidence import RATS_TLS_SIZE, Envelope, decode_json, decode_rats_tls
from csvverify.report import EXT_MAGIC, EXT_SIZE, PAGE_SIZE, V1_SIZE, Report, parse_report

MAX_INPUT = 1 << 20  # far above any report container; keeps a stray huge file from being read whole
WRAPPER_SIZE = 16 + 4 + PAGE_SIZE  # csv-rs {magic[16], flags u32, data[4096]}
_BINARY_SIZES = (V1_SIZE, EXT_SIZE, PAGE_SIZE, WRAPPER_SIZE, RATS_TLS_SIZE)
_WRAPPER_FLAGS = {0: 1, 1: 2, 3: 3}  # flags → report version when the magic is ATTESTATION_EXT
_CERT_SIZES = {832: "an HRK/HSK certificate", 2084: "a CEK/PEK certificate", 2916: "an hsk_cek.cert (HSK ‖ CEK)"}
_TEXT_TABLE = bytes(range(0x20, 0x7F)) + b"\t\r\n"  # printable ASCII and whitespace
_HEX_BYTES = frozenset(b"0123456789abcdefABCDEF \t\r\n")


@dataclass(frozen=True)
class Evidence:
    """Report bytes taken out of their container, plus what the container said about them."""

    report: bytes
    container: str
    version: int | None = None  # when the container states the layout
    version_source: str | None = None
    envelope: Envelope | None = None  # what an evidence envelope claims besides the report


def read_input(path: str | os.PathLike) -> bytes:
    """The bytes of one evidence file ("-" is standard input), with a specific error for anything else."""
    name = str(path)
    if name == "-":
        data = sys.stdin.buffer.read(MAX_INPUT + 1)
        return _check_read(data, "<stdin>")
    try:
        st = os.stat(path)  # symlinks are followed: a link to a report is a valid input
    except FileNotFoundError:
        raise InputError(f"{name}: no such file", hint="check the path") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror}") from None
    _check_kind(st, name)  # before opening: opening a device can have effects of its own
    try:
        # O_NONBLOCK: a file swapped for a FIFO after the stat must not block the open; fstat then decides.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(f"{name}: cannot be read: {exc.strerror}") from None
    with open(fd, "rb", closefd=True) as fh:
        st = os.fstat(fd)
        _check_kind(st, name)
        try:
            # Read the size fstat gives (a batch reads many small files: no 1 MiB buffer each), plus one byte
            # to notice a file that grew or claims size 0 (/proc); then read on, up to the cap.
            data = fh.read(st.st_size + 1)
            if len(data) > st.st_size:
                data += fh.read(MAX_INPUT + 1 - len(data))
        except OSError as exc:
            raise InputError(f"{name}: cannot be read: {exc.strerror}") from None
    return _check_read(data, name)


def _check_kind(st: os.stat_result, name: str) -> None:
    """Only regular files of a plausible size are read."""
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a directory", hint="pass report files; `csvverify audit DIR` walks directories")
    if not stat.S_ISREG(st.st_mode):
        kind = "a FIFO" if stat.S_ISFIFO(st.st_mode) else "a device or socket"
        raise InputError(f"{name}: is {kind}, not a regular file", hint="copy it into a regular file first")
    if st.st_size > MAX_INPUT:
        raise InputError(f"{name}: {st.st_size} bytes is far too large for a report (limit {MAX_INPUT} bytes; a "
                         f"report page is {PAGE_SIZE} bytes)", hint="check you passed the report and not an image")


def _check_read(data: bytes, name: str) -> bytes:
    if not data:
        raise InputError(f"{name}: the file is empty", hint="the collection step may have failed")
    if len(data) > MAX_INPUT:
        raise InputError(f"{name}: more than {MAX_INPUT} bytes is far too large for a report")
    return data


def decode_container(data: bytes, source: str) -> Evidence:
    """Recognise the container by content; text (hex or base64) is decoded once, then must be binary."""
    if data.lstrip()[:1] in (b"{", b"[") and (len(data) not in _BINARY_SIZES or _looks_textual(data)):
        report, version, how, envelope = decode_json(bytes(data), source)
        if len(report) not in (V1_SIZE, EXT_SIZE, PAGE_SIZE):
            raise InputError(f"{source}: the report inside the JSON is {len(report)} bytes, not a report size")
        return Evidence(report, envelope.shape, version, how, envelope)
    if len(data) in _BINARY_SIZES and not _looks_textual(data):
        return _binary(data, source, "")
    if not _looks_textual(data):
        if len(data) in _CERT_SIZES:
            raise InputError(f"{source}: {len(data)} bytes looks like {_CERT_SIZES[len(data)]}, not a report",
                             hint="certificates go to --hsk-cek, --hsk, --cek or --trust-root")
        raise InputError(f"{source}: {len(data)} bytes is not a report container (V1 report {V1_SIZE}, V2/V3 report "
                         f"{EXT_SIZE}, page {PAGE_SIZE}, wrapper {WRAPPER_SIZE}, rats-tls evidence {RATS_TLS_SIZE} "
                         f"bytes, their hex/base64 text, or JSON evidence)",
                         hint="check the file is a report and not truncated or padded")
    stripped = bytes(data).strip()
    candidates = _decode_text(stripped)
    if not candidates:
        raise InputError(f"{source}: text that is neither hex nor valid base64",
                         hint="pass the raw report file, or its hex or base64 encoding")
    for decoded, kind in candidates:
        if len(decoded) in _BINARY_SIZES:
            return _binary(decoded, source, f"{kind} text of ")
    decoded, kind = candidates[0]
    raise InputError(f"{source}: {kind} text decodes to {len(decoded)} bytes, which is not a report size "
                     f"({', '.join(map(str, _BINARY_SIZES))})")


def _looks_textual(data: bytes) -> bool:
    return not bytes(data).translate(None, _TEXT_TABLE)


def _decode_text(text: bytes) -> list[tuple[bytes, str]]:
    """Every reading of the text as hex or base64 (a base64 text may happen to be all hex digits)."""
    compact = b"".join(text.split())
    out = []
    if set(compact) <= _HEX_BYTES and len(compact) % 2 == 0:
        out.append((bytes.fromhex(compact.decode()), "hex"))
    try:
        alphabet = b"-_" if (b"-" in compact or b"_" in compact) else None
        out.append((base64.b64decode(compact, altchars=alphabet, validate=True), "base64"))
    except (binascii.Error, ValueError):
        pass
    return out


def _binary(data: bytes, source: str, prefix: str) -> Evidence:
    if len(data) == RATS_TLS_SIZE:
        page, envelope = decode_rats_tls(data, source)
        return Evidence(page, prefix + envelope.shape, envelope=envelope)
    if len(data) == WRAPPER_SIZE:
        magic, flags = data[:16], int.from_bytes(data[16:20], "little")
        if magic == bytes(16):
            version = 1
        elif magic == EXT_MAGIC and flags in _WRAPPER_FLAGS:
            version = _WRAPPER_FLAGS[flags]
        else:
            raise InputError(f"{source}: {WRAPPER_SIZE}-byte wrapper with magic {magic.hex()} and flags {flags}: "
                             f"neither all-zero nor \"ATTESTATION_EXT\" with flags 0, 1 or 3")
        return Evidence(data[20:], f"{prefix}report wrapper", version, f"wrapper magic/flags {flags}")
    kind = {V1_SIZE: "raw V1 report", EXT_SIZE: "raw V2/V3 report", PAGE_SIZE: "4096-byte page"}[len(data)]
    return Evidence(data, prefix + kind)


def parse_evidence(evidence: Evidence, source: str, version: int | None = None) -> Report:
    """The report inside; an explicit ``version`` (--report-version) wins over the container's."""
    if version is not None:
        return parse_report(evidence.report, version=version, source=source, version_source="--report-version")
    return parse_report(evidence.report, version=evidence.version, source=source,
                        version_source=evidence.version_source)


def load_report(path: str | Path, version: int | None = None) -> Report:
    """Read, unwrap and parse one report file (raises InputError with a specific message)."""
    name = str(path)
    return parse_evidence(decode_container(read_input(path), name), name, version)
