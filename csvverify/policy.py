"""Appraisal policies: a TOML file of rules, command-line flags on top, and the rules' own provenance.

A signature shows that a report came from Hygon hardware; a policy decides whether this VM is acceptable.
``load_policy`` reads and validates a file (unknown keys are errors, with line numbers, because a typo
must not silently weaken a policy); ``effective_policy`` applies command-line flags on top; the
``sha256`` of the normalized effective policy is recorded in every verdict. The checks themselves run
in ``evaluate``, called by ``csvverify.verify`` with what verification established.
"""

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import date, datetime, time, timezone
from pathlib import Path

from csvverify.errors import InputError, UsageError

POLICY_BITS = ["NODBG", "NOKS", "ES", "NOSEND", "DOMAIN", "CSV", "CSV3", "ASID_REUSE"]
FORENSIC_FLAGS = {
    "sealing_key_present": "the report still carries the VM's sealing key",
    "mac_not_checkable": "the MAC could not be checked (sealing-key field blanked)",
    "certs_from_evidence": "the HSK/CEK came from the evidence itself",
    "v1_without_expectation": "a V1 report with no expectation on any decoded field",
    "policy_fields_implausible": "the guest policy's API_MAJOR/API_MINOR fields ask for a newer firmware API "
                                 "than the platform's PEK reports",
    "debug_allowed": "the guest policy allows debugging (NODBG clear)",
}


class PolicyError(InputError):
    """A policy file that cannot be used; the message names file, line and key."""


@dataclass(frozen=True)
class Rule:
    value: object
    origin: str  # "fleet.toml:12", "--min-api", or "fleet.toml:12 + --deny-chip" for a list the flags added to


@dataclass(frozen=True)
class Measurement:
    value: bytes
    label: str


@dataclass(frozen=True)
class DenyEntry:
    chip: str
    since: datetime | None
    reason: str


@dataclass(frozen=True)
class Policy:
    source: str | None = None
    rules: dict = field(default_factory=dict)  # name -> Rule
    as_of: datetime | None = None
    as_of_given: bool = field(default=False, compare=False)  # as_of came from --as-of, not the clock

    def get(self, name: str, default=None):
        rule = self.rules.get(name)
        return default if rule is None else rule.value

    @property
    def dated(self) -> bool:
        """Whether an outcome depends on the evaluation time (a chip deny-list entry with a date)."""
        return any(entry.since is not None for entry in self.get("chips.deny") or ())

    def origin(self, name: str) -> str:
        return self.rules[name].origin

    def override(self, name: str, value, flag: str) -> "Policy":
        return replace(self, rules={**self.rules, name: Rule(value, flag)})

    def extend(self, name: str, values: tuple, flag: str) -> "Policy":
        """Add entries to a list rule: a flag can make the file's list stricter, never drop its entries."""
        prior = self.rules.get(name)
        if prior is None or not prior.value:
            return self.override(name, tuple(dict.fromkeys(values)), flag)
        merged = tuple(dict.fromkeys(tuple(prior.value) + tuple(values)))
        return replace(self, rules={**self.rules, name: Rule(merged, f"{prior.origin} + {flag}")})

    def normalized(self) -> dict:
        """JSON-ready rules (values only, sorted): what the sha256 is taken over."""
        return {name: _jsonable(rule.value) for name, rule in sorted(self.rules.items())}

    # A policy never changes (override, extend and replace make new ones): its digest and description are
    # worked out once, not in every verdict. Verdicts share the description dict; nothing writes to it.
    @cached_property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.normalized(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def describe(self) -> dict:
        return self._description

    @cached_property
    def _description(self) -> dict:
        return {"source": self.source, "sha256": self.sha256,
                "as_of": self.as_of.isoformat() if self.as_of else None,
                "rules": {name: {"value": _jsonable(rule.value), "from": rule.origin}
                          for name, rule in sorted(self.rules.items())}}


def _jsonable(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Measurement):
        return {"value": value.value.hex(), "label": value.label}
    if isinstance(value, DenyEntry):
        return {"chip": value.chip, "since": value.since.isoformat() if value.since else None, "reason": value.reason}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


# -- the file format -------------------------------------------------------------------------------

# table -> {key: kind}; kinds are checked by _Loader.convert
SCHEMA = {
    "": {"version": "int", "name": "str", "require_chain": "bool", "require_mac": "bool",
         "report_versions": "versions"},
    "measurements": {"value": "hex32", "label": "str"},  # array of tables
    "chips": {"allow": "chips", "deny": "deny"},
    "chips.deny": {"chip": "chip", "since": "datetime", "reason": "str"},  # array of tables
    "guest_policy": {"require": "bits", "forbid": "bits", "allow_debug": "bool"},
    "firmware": {"min_api": "api", "min_build": "int", "min_hsk_version": "int", "min_cek_version": "int"},
    "expect": {"user_data": "hexlist64", "user_data_file": "file", "mnonce": "hexlist16", "mnonce_file": "file"},
    "forensics": {flag: "severity" for flag in FORENSIC_FLAGS},
}
ARRAY_TABLES = {"measurements", "chips.deny"}


def _statement_lines(text: str):
    """(number, line) of the lines that begin a TOML statement: not inside a multi-line string or an
    array or inline table left open by an earlier line (their contents can look like keys)."""
    open_string, depth = None, 0
    for no, line in enumerate(text.splitlines(), 1):
        if open_string is None and depth == 0:
            yield no, line
        open_string, depth = _scan(line, open_string, depth)


def _scan(line: str, open_string: str | None, depth: int) -> tuple[str | None, int]:
    """The multi-line string delimiter still open, and the bracket depth, at the end of ``line``."""
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if open_string is not None:
            if c == "\\" and open_string == '"""':
                i += 2
                continue
            if c == open_string[0]:
                run = len(line[i:]) - len(line[i:].lstrip(c))
                i += run
                if run >= 3:  # up to two quotes before the closing three belong to the string
                    open_string = None
                continue
            i += 1
            continue
        if c == "#":
            break
        if line.startswith(('"""', "'''"), i):
            open_string, i = line[i:i + 3], i + 3
            continue
        if c == '"':
            i += 1
            while i < n and line[i] != '"':
                i += 2 if line[i] == "\\" else 1
            i += 1
            continue
        if c == "'":
            end = line.find("'", i + 1)
            i = n if end < 0 else end + 1
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return open_string, depth


class _Lines:
    """Line numbers of keys in a TOML text, for error messages (tomllib does not report positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+(?:\s*\.\s*[A-Za-z0-9_\-\"']+)*)\s*=")

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        table: tuple = ()
        counts: dict[tuple, int] = {}
        for no, line in _statement_lines(text):
            header = self._HEADER.match(line)
            if header:
                name = tuple(p.strip().strip("\"'") for p in header.group(2).split("."))
                if header.group(1) == "[[":
                    counts[name] = counts.get(name, -1) + 1
                    table = name + (counts[name],)
                else:
                    table = name
                self.lines.setdefault(table, no)
                continue
            key = self._KEY.match(line)
            if key:
                path = table + tuple(p.strip().strip("\"'") for p in key.group(1).split("."))
                self.lines.setdefault(path, no)

    def of(self, path: tuple) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path[:-1]
        return None


_CHIP_ID = re.compile(r"^\S(.*\S)?$")  # no surrounding blanks: they would never match a report's chip id


class _Loader:
    def __init__(self, text: str, source: str, base: Path):
        self.source, self.base, self.lines = source, base, _Lines(text)

    def fail(self, path: tuple, message: str, hint: str | None = None) -> PolicyError:
        key = ".".join(str(p) for p in path if not isinstance(p, int)) or "(top level)"
        return PolicyError(f"{self.origin(path)}: {key}: {message}",
                           hint=hint or "see docs/policy.md, or `csvverify policy init` for a commented template")

    def origin(self, path: tuple) -> str:
        line = self.lines.of(path)
        return f"{self.source}:{line}" if line else self.source

    def check_keys(self, obj: dict, table: str, path: tuple) -> None:
        allowed = SCHEMA[table]
        for key in obj:
            sub = f"{table}.{key}" if table else key
            if key in allowed or sub in SCHEMA:
                continue
            close = difflib.get_close_matches(key, list(allowed) + [k.split(".")[-1] for k in SCHEMA
                                                                    if k.startswith(table) and k != table], n=1)
            raise self.fail(path + (key,), "unknown key" + (f" (did you mean {close[0]!r}?)" if close else ""),
                            hint="unknown keys are errors so that a typo cannot silently weaken a policy")

    def convert(self, value, kind: str, path: tuple):
        def bad(what: str) -> PolicyError:
            return self.fail(path, f"{what}, found {type(value).__name__} {str(value)[:40]!r}")

        if kind == "bool":
            if not isinstance(value, bool):
                raise bad("expected true or false")
            return value
        if kind == "int":
            if type(value) is not int or value < 0:
                raise bad("expected a non-negative integer")
            return value
        if kind == "str":
            if not isinstance(value, str):
                raise bad("expected a string")
            return value
        if kind == "chip":
            if not valid_chip_id(value):
                raise bad("expected a chip id (a non-empty string without surrounding blanks)")
            return value
        if kind == "versions":
            if not isinstance(value, list) or not value or any(type(v) is not int or v not in (1, 2, 3) for v in value):
                raise bad("expected a list of report versions from 1, 2, 3 (integers)")
            return tuple(sorted(set(value)))
        if kind == "chips":
            if not isinstance(value, list) or not all(valid_chip_id(v) for v in value):
                raise bad("expected a list of chip ids (non-empty strings without surrounding blanks)")
            return tuple(dict.fromkeys(value))
        if kind == "bits":
            if not isinstance(value, list) or any(v not in POLICY_BITS for v in value):
                raise bad(f"expected a list of policy bit names from {', '.join(POLICY_BITS)}")
            return tuple(dict.fromkeys(value))
        if kind == "api":
            return parse_api(value, bad)
        if kind == "hex32":
            return parse_hex(value, 32, bad)
        if kind in ("hexlist64", "hexlist16"):
            size = 64 if kind == "hexlist64" else 16
            if not isinstance(value, list) or not value:
                raise bad("expected a non-empty list of hex strings (remove the key to not check this value)")
            return tuple(parse_hex(v, size, lambda what: self.fail(path, f"entry {i + 1}: {what}"), pad=size == 64)
                         for i, v in enumerate(value))
        if kind == "file":
            if not isinstance(value, str) or not value:
                raise bad("expected a file path")
            return value
        if kind == "datetime":
            return to_utc(value, bad)
        if kind == "severity":
            if value not in ("warn", "fail"):
                raise bad('expected "warn" or "fail"')
            return value
        raise AssertionError(kind)


def valid_chip_id(value) -> bool:
    return isinstance(value, str) and bool(_CHIP_ID.match(value))


def parse_hex(value, size: int, fail, pad: bool = False) -> bytes:
    if not isinstance(value, str):
        raise fail("expected a hex string")
    try:
        data = bytes.fromhex(value.strip().removeprefix("0x"))
    except ValueError:
        raise fail(f"{value[:40]!r} is not hex") from None
    if pad and len(data) <= size:
        return data.ljust(size, b"\0")
    if len(data) != size:
        raise fail(f"{len(data)} bytes, expected {size}")
    return data


def parse_api(value, fail) -> tuple[int, int]:
    match = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", value) if isinstance(value, str) else None
    if not match or int(match.group(1)) > 255 or int(match.group(2)) > 255:
        raise fail('expected "MAJOR.MINOR", e.g. "1.3"')
    return int(match.group(1)), int(match.group(2))


def to_utc(value, fail) -> datetime:
    """A date or date-time (TOML value or ISO text) as an aware UTC datetime; no offset means UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            try:
                value = date.fromisoformat(value.strip())
            except ValueError:
                raise fail("expected a date or date-time (2026-11-01 or 2026-11-01T12:00:00Z)") from None
    try:
        if isinstance(value, datetime):
            return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
        if isinstance(value, date):
            return datetime.combine(value, time(0), tzinfo=timezone.utc)
    except OverflowError:
        raise fail("out of range: in UTC it falls outside the years 1 to 9999") from None
    raise fail("expected a date or date-time")


def _hex_file(path: Path, size: int, ld: _Loader, key: tuple) -> tuple[bytes, ...]:
    """The accepted values in a values file; every error names the policy line and key and the file's line."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ld.fail(key, f"cannot read {path}: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ld.fail(key, f"{path} is not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start}); "
                           "it must hold one hex value per line") from None
    values = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#")[0].strip()
        if line:
            values.append(parse_hex(line, size, lambda what: ld.fail(key, f"{path}:{no}: {what}"), pad=size == 64))
    if not values:
        raise ld.fail(key, f"{path} holds no values (only blank lines or comments)",
                      hint="a values file lists the accepted values, one hex value per line; "
                           "remove the key to not check this value")
    return tuple(values)


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {exc.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{path}: the policy file is not UTF-8 text (byte {data[exc.start]:#04x} at offset "
                          f"{exc.start})", hint="a policy is a TOML text file; see `csvverify policy init`") from None
    return parse_policy(text, str(path), path.parent)


def parse_policy(text: str, source: str = "policy", base: Path = Path(".")) -> Policy:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}", hint="fix the syntax at the position named") from None
    ld = _Loader(text, source, base)
    ld.check_keys(doc, "", ())
    if type(doc.get("version")) is not int or doc["version"] != 1:
        raise ld.fail(("version",), "required, and must be the integer 1 (the policy format version)")
    rules: dict[str, Rule] = {}

    def put(name: str, value, path: tuple) -> None:
        rules[name] = Rule(value, ld.origin(path))

    for key in ("name", "require_chain", "require_mac", "report_versions"):
        if key in doc:
            put(key, ld.convert(doc[key], SCHEMA[""][key], (key,)), (key,))
    if "measurements" in doc:
        put("measurements", _measurements(ld, doc["measurements"]), ("measurements", 0))
    for table in ("chips", "guest_policy", "firmware", "expect", "forensics"):
        if table not in doc:
            continue
        section = doc[table]
        if not isinstance(section, dict):
            raise ld.fail((table,), "expected a table")
        ld.check_keys(section, table, (table,))
        for key, value in section.items():
            if table == "chips" and key == "deny":
                put("chips.deny", _deny(ld, value), ("chips", "deny", 0))
            elif table == "expect":
                continue  # below: a list and a file of the same quantity are merged
            else:
                put(f"{table}.{key}", ld.convert(value, SCHEMA[table][key], (table, key)), (table, key))
    for quantity, size in (("user_data", 64), ("mnonce", 16)):
        _expected_values(ld, doc.get("expect", {}), quantity, size, base, rules)
    policy = Policy(source=source, rules=rules)
    for name, message in contradictions(policy):
        raise ld.fail(tuple(name.split(".")), message, hint="a policy no report can meet is an error, not a verdict")
    return policy


def _measurements(ld: _Loader, items) -> tuple[Measurement, ...]:
    if not isinstance(items, list) or not items:
        raise ld.fail(("measurements",), "expected [[measurements]] entries with value and label")
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise ld.fail(("measurements",), "expected [[measurements]] tables")
        ld.check_keys(item, "measurements", ("measurements", i))
        if "value" not in item:
            raise ld.fail(("measurements", i), "entry without value")
        out.append(Measurement(ld.convert(item["value"], "hex32", ("measurements", i, "value")),
                               ld.convert(item.get("label", f"measurement #{i + 1}"), "str",
                                          ("measurements", i, "label"))))
    return tuple(out)


def _expected_values(ld: _Loader, section: dict, quantity: str, size: int, base: Path, rules: dict) -> None:
    """expect.<quantity> from the inline list and the values file together, whichever comes first."""
    parts = []  # (line, values, origin), put in the file's order below
    if quantity in section:
        path = ("expect", quantity)
        parts.append((ld.lines.of(path) or 0, ld.convert(section[quantity], f"hexlist{size}", path), ld.origin(path)))
    if f"{quantity}_file" in section:
        path = ("expect", f"{quantity}_file")
        name = ld.convert(section[path[1]], "file", path)
        parts.append((ld.lines.of(path) or 0, _hex_file(base / name, size, ld, path), ld.origin(path)))
    parts.sort(key=lambda part: part[0])
    if parts:
        values = tuple(dict.fromkeys(v for _, part, _ in parts for v in part))
        rules[f"expect.{quantity}"] = Rule(values, " + ".join(origin for _, _, origin in parts))


def _deny(ld: _Loader, value) -> tuple[DenyEntry, ...]:
    if not isinstance(value, list):
        raise ld.fail(("chips", "deny"), "expected [[chips.deny]] entries (chip, since, reason)")
    out = []
    for i, item in enumerate(value):
        path = ("chips", "deny", i)
        if isinstance(item, str):
            out.append(DenyEntry(ld.convert(item, "chip", path), None, ""))
            continue
        if not isinstance(item, dict):
            raise ld.fail(path, "expected a chip id or a table with chip, since, reason")
        ld.check_keys(item, "chips.deny", path)
        if "chip" not in item:
            raise ld.fail(path, "entry without chip")
        since = ld.convert(item["since"], "datetime", path + ("since",)) if "since" in item else None
        out.append(DenyEntry(ld.convert(item["chip"], "chip", path + ("chip",)), since,
                             ld.convert(item.get("reason", ""), "str", path + ("reason",))))
    return tuple(out)


def contradictions(policy: Policy) -> list[tuple[str, str]]:
    """(rule, message) for rules no report can meet together: such a policy is an error, not a verdict."""
    found = []
    required = set(policy.get("guest_policy.require") or ())
    for bit in policy.get("guest_policy.forbid") or ():
        if bit in required:
            found.append(("guest_policy.forbid", f"{bit} is both required ({policy.origin('guest_policy.require')}) "
                                                 f"and forbidden ({policy.origin('guest_policy.forbid')})"))
    allow_debug = policy.get("guest_policy.allow_debug", False)
    if "NODBG" in (policy.get("guest_policy.forbid") or ()) and not allow_debug:
        found.append(("guest_policy.forbid", f"NODBG is forbidden ({policy.origin('guest_policy.forbid')}), so only "
                                             "debuggable guests could pass, but allow_debug is not true: "
                                             "set allow_debug = true (or --allow-debug) or drop NODBG from forbid"))
    if allow_debug and policy.get("forensics.debug_allowed") == "fail":
        found.append(("forensics.debug_allowed",
                      f'"fail" ({policy.origin("forensics.debug_allowed")}) contradicts allow_debug = true '
                      f"({policy.origin('guest_policy.allow_debug')}): debuggable guests would be both accepted "
                      "and failed; keep one of the two"))
    return found


def effective_policy(loaded: Policy | None, *, as_of: str | None = None, require_bits=(), forbid_bits=(),
                     allow_debug: bool | None = None, min_api: str | None = None, min_build: int | None = None,
                     allow_chips=(), deny_chips=(), require_chain: bool | None = None,
                     now: datetime | None = None) -> Policy | None:
    """The file's rules (``loaded``, or None) with the command-line flags applied; None when neither gives a rule.

    List flags (--require-bit, --forbid-bit, --deny-chip) add to the file's list; the others, --allow-chip
    included, replace the file's rule. Problems are ``UsageError`` (exit class 2), naming the flag.
    """
    policy = loaded or Policy()
    for flag, chips in (("--allow-chip", allow_chips), ("--deny-chip", deny_chips)):
        for chip in chips:
            if not valid_chip_id(chip):
                raise UsageError(f"{flag} {chip!r}: expected a chip id (non-empty, without surrounding blanks)")
    api = parse_api(min_api, lambda what: UsageError(f"--min-api {min_api!r}: {what}")) if min_api is not None else None
    denials = tuple(DenyEntry(chip, None, "--deny-chip") for chip in deny_chips)
    for name, values, flag in (("guest_policy.require", require_bits, "--require-bit"),
                               ("guest_policy.forbid", forbid_bits, "--forbid-bit"),
                               ("chips.deny", denials, "--deny-chip")):
        if values:
            policy = policy.extend(name, tuple(values), flag)
    for name, value, flag in (("guest_policy.allow_debug", allow_debug, "--allow-debug"),
                              ("firmware.min_api", api, "--min-api"),
                              ("firmware.min_build", min_build, "--min-build"),
                              ("chips.allow", tuple(dict.fromkeys(allow_chips)) or None, "--allow-chip"),
                              ("require_chain", require_chain, "--require-chain")):
        if value is not None:
            policy = policy.override(name, value, flag)
    for _, message in contradictions(policy):
        raise UsageError(message, hint="the flags and the policy file together ask for something no report can meet")
    if not policy.rules and loaded is None:
        if as_of is not None:
            raise UsageError("--as-of dates the policy's rules, but no policy is given",
                             hint="add --policy FILE or policy flags (--deny-chip, --require-bit …), or drop --as-of")
        return None
    when = parse_as_of(as_of) if as_of is not None else (now or datetime.now(timezone.utc).replace(microsecond=0))
    return replace(policy, as_of=when, as_of_given=as_of is not None)


def parse_as_of(text: str) -> datetime:
    if not text.strip():
        raise UsageError(f"--as-of {text!r}: empty; give a date (2026-10-01) or a date-time (2026-10-01T12:00:00Z)",
                         hint="leave --as-of out to evaluate as of now")
    return to_utc(text, lambda what: UsageError(f"--as-of {text!r}: {what}"))


TEMPLATE = '''\
# csvverify appraisal policy (docs/policy.md). Check it with: csvverify policy check FILE
# Every key is optional except `version`; unknown keys are errors.
version = 1
name = "example fleet policy"

require_chain = true            # the PEK must chain to the pinned Hygon root (--chain)
require_mac = false             # true: the MAC must be checkable (fails on blanked sealing-key fields)
report_versions = [1, 2, 3]     # accepted report layouts

# Accepted launch measurements; any may match, the verdict names the label that did.
# `csvverify digest ... --emit-policy --label "..."` prints such entries.
[[measurements]]
value = "1178dadbf826ec7a07444ba358376d81c312cb53d703f9da83b26c1eee2ea052"
label = "example image"

# Chip lists pass only when the chip id is bound: the chain verified and chip.binding passed
# (collateral found under the chip id: --certs DIR or the trust store, not --hsk-cek).
[chips]
allow = []                      # when non-empty, only these chip ids are accepted
# deny entries apply from `since` (a date or date-time, UTC when no offset is given)
[[chips.deny]]
chip = "EXAMPLECHIP0001"
since = 2026-01-01
reason = "example: chip retired"

# V1 reports: guest-policy bits pass only when an expectation on user data, mnonce or measure
# passed (the V1 anonce is unsigned); the [[measurements]] above count as one.
[guest_policy]
require = ["NODBG"]             # bits that must be set: NODBG NOKS ES NOSEND DOMAIN CSV CSV3 ASID_REUSE
forbid = []                     # bits that must be clear
allow_debug = false             # under any policy a guest without NODBG fails unless this is true

# A minimum whose input is missing fails (e.g. min_build on a V1 report, versions without --chain).
[firmware]
min_api = "1.0"                 # platform firmware API, from the PEK certificate (needs the chain)
# min_build = 2339              # V2/V3 reports: firmware build (V1 reports carry none: they fail it)
# min_hsk_version = 1           # version fields of the HSK and CEK certificates in the chain
# min_cek_version = 2

[expect]
# user_data = ["75736572206461746100"]   # hex, zero-padded to 64 bytes; any may match
# user_data_file = "challenges.txt"       # one hex value per line, relative to this file (adds to user_data)
# mnonce = ["67c6697351ff4aec29cdbaabf2fbe346"]
# mnonce_file = "nonces.txt"              # adds to mnonce

# Forensic flags: "warn" (a finding only) or "fail" (a policy failure).
[forensics]
sealing_key_present = "fail"
mac_not_checkable = "warn"
certs_from_evidence = "warn"
v1_without_expectation = "fail"
policy_fields_implausible = "warn"
debug_allowed = "fail"
'''


# -- evaluation (pure: called by csvverify.verify with what verification established) ------------


@dataclass(frozen=True)
class Facts:
    """What verification established, as the policy rules need it."""

    report: object  # csvverify.report.Report
    chain_requested: bool
    chain_verified: bool  # root, HSK, CEK and PEK checks all passed
    mac_status: str  # "pass", "fail" or "skipped"
    pek_api: tuple[int, int] | None
    hsk_version: int | None
    cek_version: int | None
    findings: frozenset  # finding ids
    overridden: frozenset  # quantities given by --expect-* flags: "user_data", "mnonce", "measure"
    expectations_passed: frozenset = frozenset()  # quantities whose expect.* check passed
    chip_binding: str = "not run"  # the status of the chip.binding check


V1_UNPINNED = ("decoded with the unsigned V1 anonce and no passing expectation on user data, mnonce or measure "
               "pins it; add one (--expect-user-data, --expect-mnonce, --expect-measure, or [expect] / "
               "[[measurements]] in the policy)")
# Forensic flags computed from the decoded guest-policy word.
_DECODED_FLAGS = ("debug_allowed", "policy_fields_implausible")


def policy_fields_implausible(policy_word: int, pek_api: tuple[int, int] | None) -> str | None:
    """The guest policy's API_MAJOR/API_MINOR fields (bits 16-31) above the platform PEK's firmware API.

    No genuine launch on this platform has such a word, so it suggests a changed V1 anonce. Bits 8-15
    (HSK/CEK minimum versions) constrain migration targets, not the launching platform, so they are not
    compared. Every bit has a defined meaning, so there are no "unknown" bits to flag.
    """
    wanted = (policy_word >> 16 & 0xFF, policy_word >> 24 & 0xFF)
    if pek_api is not None and wanted > pek_api:
        return (f"the guest policy asks for firmware API {wanted[0]}.{wanted[1]} or newer, but the platform's PEK "
                f"says {pek_api[0]}.{pek_api[1]}: no genuine launch on this platform has that policy")
    return None


def _fmt_rule(policy: Policy, name: str) -> str:
    return f"{name} ({policy.origin(name)})"


def evaluate(policy: Policy, facts: Facts, add) -> None:
    """Add the policy.* checks through ``add(check_id, status, reason)``; statuses are strings.

    The allowlists run first: a passing one pins a V1 report's anonce, which the rules on the decoded
    policy word (guest-policy bits, flags read from it) need in order to pass.
    """
    _requirements(policy, facts, add)
    pinned = bool(facts.expectations_passed)
    for check_id, rule, quantity, actual, flag in (
            ("policy.measurement", "measurements", "measure", facts.report.measure, "--expect-measure"),
            ("policy.user_data", "expect.user_data", "user_data", facts.report.report_data, "--expect-user-data"),
            ("policy.mnonce", "expect.mnonce", "mnonce", facts.report.mnonce, "--expect-mnonce")):
        if _allowlist(policy, facts, add, check_id, rule, quantity, actual, flag) == "pass":
            pinned = True
    unpinned = V1_UNPINNED if facts.report.version == 1 and not pinned else None
    _chip(policy, facts, add)
    _guest_policy(policy, facts, add, unpinned)
    _firmware(policy, facts, add)
    _forensics(policy, facts, add, unpinned)


def _outcome(add, check_id: str, failures: list[str], passes: list[str], empty: str,
             unproven: list[str] = ()) -> None:
    """fail / pass / not-applicable; passes that rest on an unproven input (``unproven``) fail instead."""
    if passes and unproven:
        failures = failures + [f"{'; '.join(passes)}: not accepted, because " + "; and ".join(unproven)]
    if failures:
        add(check_id, "fail", "; ".join(failures))
    elif passes:
        add(check_id, "pass", "; ".join(passes))
    else:
        add(check_id, "not-applicable", empty)


def _requirements(policy: Policy, facts: Facts, add) -> None:
    fails, passes = [], []
    if policy.get("require_chain"):
        rule = _fmt_rule(policy, "require_chain")
        if not facts.chain_requested:
            fails.append(f"{rule}: the chain was not checked (use --chain with HSK/CEK collateral)")
        elif not facts.chain_verified:
            fails.append(f"{rule}: the chain to a trusted root did not verify")
        else:
            passes.append(f"{rule}: the PEK chains to a trusted root")
    if policy.get("require_mac"):
        rule = _fmt_rule(policy, "require_mac")
        if facts.mac_status == "pass":
            passes.append(f"{rule}: the MAC was checked and matches")
        else:
            fails.append(f"{rule}: the MAC was {'not checkable' if facts.mac_status == 'skipped' else 'wrong'}")
    versions = policy.get("report_versions")
    if versions:
        rule = _fmt_rule(policy, "report_versions")
        ok = facts.report.version in versions
        (passes if ok else fails).append(f"{rule}: V{facts.report.version} is {'' if ok else 'not '}among "
                                         f"{', '.join(f'V{v}' for v in versions)}")
    _outcome(add, "policy.requirements", fails, passes,
             "the policy sets no require_chain, require_mac or report_versions")


def _allowlist(policy: Policy, facts: Facts, add, check_id: str, rule: str, quantity: str, actual: bytes,
               flag: str) -> str:
    """One allowlist check; returns its status."""
    accepted = policy.get(rule)
    if not accepted:
        add(check_id, "not-applicable", f"the policy lists no accepted {quantity} values")
        return "not-applicable"
    if quantity in facts.overridden:
        add(check_id, "skipped", f"{_fmt_rule(policy, rule)} is overridden by {flag} (checked as expect.{quantity})")
        return "skipped"
    for item in accepted:
        value, label = (item.value, item.label) if isinstance(item, Measurement) else (item, None)
        if value == actual:
            what = f"matches {label!r}" if label else "matches an accepted value"
            add(check_id, "pass", f"{quantity} {what} from {_fmt_rule(policy, rule)}")
            return "pass"
    add(check_id, "fail", f"{quantity} {actual.hex()[:32]}… is none of the {len(accepted)} accepted values of "
                          f"{_fmt_rule(policy, rule)}")
    return "fail"


def _chain_missing(facts: Facts, what: str) -> str | None:
    """Why ``what`` (something only the verified chain proves) is unproven, or None when the chain verified."""
    if not facts.chain_requested:
        return (f"{what} needs the chain: use --chain with HSK/CEK collateral (--certs DIR, the trust store "
                "or --hsk-cek)")
    if not facts.chain_verified:
        return f"the chain to a trusted root did not verify, so {what} is unproven"
    return None


def _chip_unbound(facts: Facts) -> list[str]:
    """Why the report's chip id (outside every signature) is not bound to the chain, if it is not."""
    if not facts.chain_requested:
        return ["the chip id is not bound: the chain was not checked, so no certificate filed under this chip id "
                "is shown to have signed the PEK; use --chain with --certs DIR or the trust store"]
    reasons = []
    if facts.chip_binding == "skipped":
        reasons.append("the chip id is not bound (chip.binding skipped): the certificates were not found under this "
                       "chip id (given explicitly with --hsk-cek or --hsk/--cek, a chip-less hsk_cek.cert, or carried "
                       "by the evidence); use --certs DIR holding DIR/<chip id>/hsk_cek.cert or the trust store "
                       "(certs import --chip-id)")
    elif facts.chip_binding != "pass":
        reasons.append(f"the chip id is not bound: chip.binding is {facts.chip_binding} (see that check)")
    if not facts.chain_verified:
        reasons.append("the chain to a trusted root did not verify, so no certificate filed under this chip id is "
                       "shown to have signed the PEK")
    return reasons


def _chip(policy: Policy, facts: Facts, add) -> None:
    chip = facts.report.chip_id
    allow, deny = policy.get("chips.allow"), policy.get("chips.deny")
    if not allow and not deny:
        add("policy.chip", "not-applicable", "the policy has no chip allow or deny list")
        return
    as_of = policy.as_of or datetime.now(timezone.utc)
    fails, passes = [], []
    for entry in deny or ():
        if entry.chip != chip:
            continue
        if entry.since is None or as_of >= entry.since:
            since = f" since {entry.since.date().isoformat()}" if entry.since else ""
            why = f" ({entry.reason})" if entry.reason else ""
            fails.append(f"chip {chip!r} is denied{since}{why} by {_fmt_rule(policy, 'chips.deny')}, as of "
                         f"{as_of.isoformat()}")
        else:
            passes.append(f"chip {chip!r} is denied only from {entry.since.isoformat()}, after the as-of time "
                          f"{as_of.isoformat()}")
    if allow:
        if chip in allow:
            passes.append(f"chip {chip!r} is on the allow list of {_fmt_rule(policy, 'chips.allow')}")
        else:
            fails.append(f"chip {chip!r} is not on the allow list of {_fmt_rule(policy, 'chips.allow')}")
    if not fails and not passes:
        passes.append(f"chip {chip!r} is not on the deny list of {_fmt_rule(policy, 'chips.deny')}")
    # Only the binding matters, whatever the V1 anonce: the CEK filed under that chip id signed the PEK.
    unproven = _chip_unbound(facts)
    if passes and not unproven:
        passes[-1] += " (bound: chip.binding passed and the chain verified)"
    _outcome(add, "policy.chip", fails, passes, "", unproven)


def _guest_policy(policy: Policy, facts: Facts, add, unpinned: str | None) -> None:
    """Required and forbidden bits; under any policy NODBG is required unless allow_debug is true."""
    word = facts.report.policy
    names = {name: bool(word >> i & 1) for i, name in enumerate(POLICY_BITS)}
    required = policy.get("guest_policy.require") or ()
    fails, passes = [], []
    for bit in required:
        (passes if names[bit] else fails).append(f"{bit} {'is set' if names[bit] else 'is NOT set'} "
                                                 f"(required by {policy.origin('guest_policy.require')})")
    for bit in policy.get("guest_policy.forbid") or ():
        (fails if names[bit] else passes).append(f"{bit} {'IS set' if names[bit] else 'is clear'} "
                                                 f"(forbidden by {policy.origin('guest_policy.forbid')})")
    if "NODBG" not in required:  # a required NODBG is judged above
        if names["NODBG"]:
            passes.append("NODBG is set: the guest cannot be debugged")
        elif policy.get("guest_policy.allow_debug", False):
            passes.append(f"NODBG is clear, allowed by {_fmt_rule(policy, 'guest_policy.allow_debug')}")
        else:
            origin = (policy.origin("guest_policy.allow_debug") if "guest_policy.allow_debug" in policy.rules
                      else "the default under any policy")
            fails.append(f"NODBG is clear: the guest may be debugged, and allow_debug is false ({origin}); "
                         "accept it with allow_debug = true or --allow-debug")
    _outcome(add, "policy.guest_policy", fails, passes, "", [f"the policy word was {unpinned}"] if unpinned else [])


def _firmware(policy: Policy, facts: Facts, add) -> None:
    """Minimums; a minimum whose input is missing or unproven fails, naming what would provide it."""
    fails, passes = [], []

    def minimum(rule: str, have, label: str, missing: str | None) -> None:
        want = policy.get(rule)
        if want is None:
            return
        if missing is None and have is None:
            missing = f"no {label} is available"
        if missing:
            fails.append(f"{_fmt_rule(policy, rule)} cannot be checked: {missing}")
            return
        shown = f"{want[0]}.{want[1]}" if isinstance(want, tuple) else str(want)
        have_shown = f"{have[0]}.{have[1]}" if isinstance(have, tuple) else str(have)
        (passes if have >= want else fails).append(f"{label} {have_shown} {'>=' if have >= want else '<'} {shown} "
                                                   f"({policy.origin(rule)})")

    minimum("firmware.min_api", facts.pek_api, "firmware API (PEK)",
            "the report's PEK certificate is unusable" if facts.pek_api is None else
            _chain_missing(facts, "the firmware API in the PEK certificate (outside the report signature)"))
    minimum("firmware.min_build", facts.report.build, "firmware build",
            f"V{facts.report.version} reports carry no firmware build; accept only V2/V3 (report_versions) or "
            "drop min_build" if facts.report.build is None else None)
    minimum("firmware.min_hsk_version", facts.hsk_version, "HSK certificate version",
            _chain_missing(facts, "the HSK certificate's version"))
    minimum("firmware.min_cek_version", facts.cek_version, "CEK certificate version",
            _chain_missing(facts, "the CEK certificate's version"))
    _outcome(add, "policy.firmware", fails, passes, "the policy sets no firmware minimums")


FINDING_OF_FLAG = {  # mac_not_checkable has no finding: it is the report.mac check being skipped
    "sealing_key_present": "sealing-key-present",
    "certs_from_evidence": "certs-from-evidence",
    "v1_without_expectation": "no-expectation",
    "policy_fields_implausible": "policy-fields-implausible",
    "debug_allowed": "debug-allowed",
}


def _forensics(policy: Policy, facts: Facts, add, unpinned: str | None) -> None:
    failing = [flag for flag in FORENSIC_FLAGS if policy.get(f"forensics.{flag}") == "fail"]
    if not failing:
        add("policy.forensics", "not-applicable", "the policy promotes no forensic flag to a failure")
        return
    hit, unproven = [], []
    for flag in failing:
        present = (facts.mac_status == "skipped" if flag == "mac_not_checkable"
                   else FINDING_OF_FLAG[flag] in facts.findings)
        if present:
            hit.append(f"{flag}: {FORENSIC_FLAGS[flag]} ({policy.origin(f'forensics.{flag}')})")
        elif flag in _DECODED_FLAGS and unpinned:
            unproven.append(f"{flag} is not raised, but the policy word it reads was {unpinned}")
        elif flag == "policy_fields_implausible" and facts.pek_api is None:
            unproven.append(f"{flag} cannot be checked: the report's PEK certificate is unusable")
    if hit or unproven:
        add("policy.forensics", "fail", "; ".join(hit + unproven))
    else:
        add("policy.forensics", "pass", "none of the flags the policy fails on is raised: " + ", ".join(failing))
