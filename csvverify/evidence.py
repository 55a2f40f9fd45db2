"""Evidence envelopes seen in the wild, taken apart into report bytes plus what the envelope claims.

* CoCo guest-components / trustee JSON (2025): ``attestation_report`` is the csv-rs wrapper
  ``{magic[16], flags, data[4096]}``; ``cert_chain.pek`` and optionally ``cert_chain.hsk_cek.{hsk,cek}``
  are csv-rs serde objects; ``serial_number`` is the chip id (64 bytes, NUL padded).
* Older trustee JSON: ``attestation_report`` as base64 text, or a serde object ``{body{7 fields},
  sig_usage, sig_algo, anonce, sig{r,s}}`` (with its PEK in ``cert_chain.pek``); ``cert_chain`` may hold
  ``hsk``, ``cek`` and ``pek`` directly.
* The rats-tls / librats binary blob: report page (4096) ‖ hsk_cek (2916) ‖ u32 length (7016 bytes).

Envelope fields are claims: the report's own copies are what gets verified, and differences are
reported. Serde certificates are converted back to their binary layout by field name (see
``CA_FIELDS`` / ``CSV_FIELDS``), so that signatures can be checked over the exact bytes.
"""

import base64
import binascii
import json
from dataclasses import dataclass

from csvverify.certs import CSV_CERT_SIZE, HSK_CEK_SIZE, ROOT_CERT_SIZE, ascii_text
from csvverify.errors import InputError
from csvverify.report import EXT_MAGIC, PAGE_SIZE, V1_SIZE

RATS_TLS_SIZE = PAGE_SIZE + HSK_CEK_SIZE + 4

# (JSON path, offset, kind, size): kind "u" = little-endian integer of `size` bytes, "b" = byte array.
CA_FIELDS = [
    ("body.preamble.ver", 0, "u", 4),
    ("body.preamble.data.kid", 4, "b", 16),
    ("body.preamble.data.sid", 20, "b", 16),
    ("body.preamble.data.usage", 36, "u", 4),
    ("body.pubkey.g", 64, "u", 4),
    ("body.pubkey.x", 68, "b", 72),
    ("body.pubkey.y", 140, "b", 72),
    ("body.uid_size", 212, "u", 2),
    ("body.user_id", 214, "b", 254),
    ("signature.r", 576, "b", 72),
    ("signature.s", 648, "b", 72),
]
CSV_FIELDS = [
    ("body.ver", 0, "u", 4),
    ("body.data.firmware.major", 4, "u", 1),
    ("body.data.firmware.minor", 5, "u", 1),
    ("body.data.pubkey.usage", 8, "u", 4),
    ("body.data.pubkey.algo", 12, "u", 4),
    ("body.data.pubkey.key.g", 16, "u", 4),
    ("body.data.pubkey.key.x", 20, "b", 72),
    ("body.data.pubkey.key.y", 92, "b", 72),
    ("body.data.uid_size", 164, "u", 2),
    ("body.data.user_id", 166, "b", 254),
    ("body.data.sid", 420, "b", 16),
] + [field for i, base in enumerate((1044, 1564)) for field in (
    (f"sigs.{i}.usage", base, "u", 4),
    (f"sigs.{i}.algo", base + 4, "u", 4),
    (f"sigs.{i}.signature.r", base + 8, "b", 72),
    (f"sigs.{i}.signature.s", base + 80, "b", 72),
)]
V1_BODY_FIELDS = [("user_pubkey_digest", 32), ("vm_id", 16), ("vm_version", 16), ("report_data", 64),
                  ("mnonce", 16), ("measure", 32)]


@dataclass(frozen=True)
class Envelope:
    """What an evidence container says besides the report itself."""

    shape: str
    serial_number: str | None = None
    hsk_cek: bytes | None = None  # certificates carried by the evidence (never trusted for being there)
    pek: bytes | None = None  # the envelope's own copy of the PEK, for cross-checking
    pek_only_in_envelope: bool = False  # legacy shape: the report's PEK slot was filled from cert_chain.pek
    chip_id_from_envelope: bool = False  # legacy shape: the report's chip id is a copy of serial_number


class _Reader:
    """Typed access to parsed JSON that names the failing field path in every error."""

    def __init__(self, source: str, prefix: str = ""):
        self.source = source
        self.prefix = prefix

    def sub(self, prefix: str) -> "_Reader":
        return _Reader(self.source, f"{self.prefix}{prefix}.")

    def fail(self, path: str, what: str) -> InputError:
        return InputError(f"{self.source}: {self.prefix}{path}: {what}",
                          hint="the evidence JSON does not have the shape csvverify reads; see docs/evidence.md")

    def get(self, obj, path: str, required: bool = True):
        cur = obj
        for part in path.split("."):
            if isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
                cur = cur[int(part)]
            elif isinstance(cur, dict) and part in cur:
                cur = cur[part]
            else:
                if required:
                    raise self.fail(path, "missing")
                return None
        return cur

    def uint(self, obj, path: str, size: int) -> int:
        value = self.get(obj, path)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << (8 * size):
            raise self.fail(path, f"expected an integer in [0, 2^{8 * size}), found {_json_kind(value)}")
        return value

    def byte_array(self, obj, path: str, size: int | None) -> bytes:
        value = self.get(obj, path)
        if not isinstance(value, list):
            raise self.fail(path, f"expected an array of integers 0..255, found {_json_kind(value)}")
        bad = next((i for i, v in enumerate(value)
                    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= 255), None)
        if bad is not None:
            raise self.fail(path, f"expected an array of integers 0..255, but element {bad} is "
                                  f"{_json_kind(value[bad])}")
        if size is not None and len(value) != size:
            raise self.fail(path, f"expected {size} bytes, found {len(value)}")
        return bytes(value)


def _json_kind(value) -> str:
    """A short description of a JSON value for error messages (never the whole value: it may be huge or deep)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return f"the number {text if len(text) <= 24 else text[:20] + '…'}"
    if isinstance(value, str):
        return f"the string {json.dumps(value[:24])[:40]}{'…' if len(value) > 24 else ''}"
    return f"an array of {len(value)} elements" if isinstance(value, list) else "an object"


def serde_to_cert(obj, fields: list, size: int, reader: _Reader, prefix: str) -> bytes:
    """Rebuild a certificate's binary layout from its csv-rs serde object (reserved areas stay zero)."""
    if not isinstance(obj, dict):
        raise reader.fail(prefix, f"expected an object, found {_json_kind(obj)}")
    reader = reader.sub(prefix)
    out = bytearray(size)
    for path, off, kind, n in fields:
        if kind == "u":
            out[off:off + n] = reader.uint(obj, path, n).to_bytes(n, "little")
        else:
            out[off:off + n] = reader.byte_array(obj, path, n)
    return bytes(out)


def cert_to_serde(raw: bytes, fields: list) -> dict:
    """The csv-rs serde object for a binary certificate (the forge builds JSON evidence with it)."""
    out: dict = {}
    for path, off, kind, n in fields:
        value = int.from_bytes(raw[off:off + n], "little") if kind == "u" else list(raw[off:off + n])
        cur = out
        parts = path.split(".")
        for i, part in enumerate(parts[:-1]):
            nxt = [] if parts[i + 1].isdigit() else {}
            if isinstance(cur, list):
                idx = int(part)
                while len(cur) <= idx:
                    cur.append({})
                cur = cur[idx]
            else:
                cur = cur.setdefault(part, nxt)
        if isinstance(cur, list):
            cur.append(value)
        else:
            cur[parts[-1]] = value
    return out


def _serial(reader: _Reader, doc: dict) -> str | None:
    value = doc.get("serial_number")
    if value is None:
        return None
    if isinstance(value, str):
        return ascii_text(value.split("\0")[0].encode("utf-8", "backslashreplace"))
    raw = reader.byte_array(doc, "serial_number", None)
    return ascii_text(raw.split(b"\0")[0])  # escaped as the report's own chip id is, so the two compare


def _chain(reader: _Reader, doc: dict) -> tuple[bytes | None, bytes | None]:
    chain = doc.get("cert_chain")
    if chain is None:
        return None, None
    if not isinstance(chain, dict):
        raise reader.fail("cert_chain", f"expected an object, found {_json_kind(chain)}")
    pek = (serde_to_cert(chain["pek"], CSV_FIELDS, CSV_CERT_SIZE, reader, "cert_chain.pek")
           if chain.get("pek") is not None else None)
    holder, base = (chain["hsk_cek"], "cert_chain.hsk_cek") if chain.get("hsk_cek") is not None else (chain, "cert_chain")
    if not isinstance(holder, dict):
        raise reader.fail(base, f"expected an object with hsk and cek, found {_json_kind(holder)}")
    if holder.get("hsk") is None and holder.get("cek") is None:
        return None, pek
    for part in ("hsk", "cek"):
        if holder.get(part) is None:
            raise reader.fail(f"{base}.{part}", "missing (hsk and cek come together)")
    hsk = serde_to_cert(holder["hsk"], CA_FIELDS, ROOT_CERT_SIZE, reader, f"{base}.hsk")
    cek = serde_to_cert(holder["cek"], CSV_FIELDS, CSV_CERT_SIZE, reader, f"{base}.cek")
    return hsk + cek, pek


def decode_json(data: bytes, source: str) -> tuple[bytes, int | None, str | None, Envelope]:
    """(report bytes, version from the wrapper or None, how, envelope) from a JSON evidence document."""
    reader = _Reader(source)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{source}: not valid JSON: {exc}") from None
    except RecursionError:
        raise InputError(f"{source}: JSON nested too deeply to be evidence (arrays or objects inside each other "
                         "hundreds of levels deep)", hint="the evidence JSON is damaged or hostile") from None
    except ValueError as exc:  # an integer with more digits than Python converts (sys.get_int_max_str_digits)
        raise InputError(f"{source}: JSON with a number too long to be evidence ({exc})",
                         hint="evidence fields are bytes (0..255) and 32-bit words") from None
    if not isinstance(doc, dict):
        raise reader.fail("(top level)", f"expected a JSON object with attestation_report, found {_json_kind(doc)}")
    report = reader.get(doc, "attestation_report")
    hsk_cek, envelope_pek = _chain(reader, doc)
    serial = _serial(reader, doc)
    if isinstance(report, str):
        try:
            raw = base64.b64decode(report, validate=True)
        except (binascii.Error, ValueError):
            raise reader.fail("attestation_report", "a string that is not base64") from None
        return raw, None, None, Envelope("JSON (base64 report)", serial, hsk_cek, envelope_pek)
    if not isinstance(report, dict):
        raise reader.fail("attestation_report", f"expected an object or base64 text, found {_json_kind(report)}")
    inner = reader.sub("attestation_report")
    if "data" in report or "magic" in report:
        magic = inner.byte_array(report, "magic", 16)
        flags = inner.uint(report, "flags", 4)
        page = inner.byte_array(report, "data", PAGE_SIZE)
        if magic == bytes(16):
            version = 1
        elif magic == EXT_MAGIC and flags in (0, 1, 3):
            version = {0: 1, 1: 2, 3: 3}[flags]
        else:
            raise inner.fail("magic", "neither all-zero nor \"ATTESTATION_EXT\" with flags 0, 1 or 3")
        return page, version, f"evidence wrapper flags {flags}", Envelope("CoCo JSON (report wrapper)", serial, hsk_cek,
                                                                          envelope_pek)
    return _legacy_report(inner, report, envelope_pek, serial), 1, "legacy serde report (V1)", Envelope(
        "legacy serde JSON", serial, hsk_cek, envelope_pek, pek_only_in_envelope=True,
        chip_id_from_envelope=serial is not None)


def _legacy_report(reader: _Reader, report: dict, pek: bytes | None, serial: str | None) -> bytes:
    """Reassemble a V1 report from the older serde shape: the TEE info as stored, the PEK from cert_chain."""
    tee = b"".join(reader.byte_array(report, f"body.{name}", n) for name, n in V1_BODY_FIELDS)
    tee += reader.uint(report, "body.policy", 4).to_bytes(4, "little")
    for word in ("sig_usage", "sig_algo", "anonce"):
        tee += reader.uint(report, word, 4).to_bytes(4, "little")
    tee += reader.byte_array(report, "sig.r", 72) + reader.byte_array(report, "sig.s", 72)
    if pek is None:
        raise _Reader(reader.source).fail("cert_chain.pek", "missing (the legacy report shape carries its PEK only there)")
    sn = (serial or "").encode().ljust(64, b"\0")
    # The PEK and chip id arrive decoded; the MAC and sealing key are not carried, so stay zero.
    raw = tee + pek + sn + bytes(64)
    assert len(raw) == V1_SIZE
    return raw


def decode_rats_tls(data: bytes, source: str) -> tuple[bytes, Envelope]:
    length = int.from_bytes(data[PAGE_SIZE + HSK_CEK_SIZE:], "little")
    if length != HSK_CEK_SIZE:
        raise InputError(f"{source}: rats-tls evidence says its hsk_cek is {length} bytes; expected {HSK_CEK_SIZE}")
    return data[:PAGE_SIZE], Envelope("rats-tls evidence", None, data[PAGE_SIZE:PAGE_SIZE + HSK_CEK_SIZE], None)
