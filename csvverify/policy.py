"""Appraisal policies: a TOML file of rules, command-line overrides, and the rules' own provenance.

A signature shows that a report came from Hygon hardware; a policy decides whether this VM is acceptable.
``load_policy`` reads and validates a file (unknown keys are errors, with line numbers, because a typo
must not silently weaken a policy); ``Policy.override`` applies command-line flags on top; the
``sha256`` of the normalized effective policy is recorded in every verdict. The checks themselves run
in ``csvverify.verify`` (``appraise``), as part of the same pure verification.
"""

import difflib
import hashlib
import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timezone
from pathlib import Path

from csvverify.errors import InputError

POLICY_BITS = ["NODBG", "NOKS", "ES", "NOSEND", "DOMAIN", "CSV", "CSV3", "ASID_REUSE"]
FORENSIC_FLAGS = {
    "sealing_key_present": "the report still carries the VM's sealing key",
    "mac_not_checkable": "the MAC could not be checked (sealing-key field blanked)",
    "certs_from_evidence": "the HSK/CEK came from the evidence itself",
    "v1_without_expectation": "a V1 report with no expectation on any decoded field",
    "policy_fields_implausible": "guest-policy fields no genuine launch on this platform could have",
    "debug_allowed": "the guest policy allows debugging (NODBG clear)",
}


class PolicyError(InputError):
    """A policy file that cannot be used; the message names file, line and key."""


@dataclass(frozen=True)
class Rule:
    value: object
    origin: str  # "fleet.toml:12" or "--min-api"


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

    def get(self, name: str, default=None):
        rule = self.rules.get(name)
        return default if rule is None else rule.value

    def origin(self, name: str) -> str:
        return self.rules[name].origin

    def override(self, name: str, value, flag: str) -> "Policy":
        return replace(self, rules={**self.rules, name: Rule(value, flag)})

    def normalized(self) -> dict:
        """JSON-ready rules (values only, sorted): what the sha256 is taken over."""
        return {name: _jsonable(rule.value) for name, rule in sorted(self.rules.items())}

    @property
    def sha256(self) -> str:
        return hashlib.sha256(json.dumps(self.normalized(), sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def describe(self) -> dict:
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

# table -> {key: kind}; kinds are checked by _convert
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


class _Lines:
    """Line numbers of keys in a TOML text, for error messages (tomllib does not report positions)."""

    _HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"' ]+?)\s*\]\]?\s*(#.*)?$")
    _KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+(?:\s*\.\s*[A-Za-z0-9_\-\"']+)*)\s*=")

    def __init__(self, text: str):
        self.lines: dict[tuple, int] = {}
        table: tuple = ()
        counts: dict[tuple, int] = {}
        for no, line in enumerate(text.splitlines(), 1):
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


class _Loader:
    def __init__(self, text: str, source: str, base: Path):
        self.source, self.base, self.lines = source, base, _Lines(text)

    def fail(self, path: tuple, message: str, hint: str | None = None) -> PolicyError:
        line = self.lines.of(path)
        where = f"{self.source}:{line}" if line else self.source
        key = ".".join(str(p) for p in path if not isinstance(p, int)) or "(top level)"
        return PolicyError(f"{where}: {key}: {message}",
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
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise bad("expected a non-negative integer")
            return value
        if kind in ("str", "chip"):
            if not isinstance(value, str) or (kind == "chip" and not value):
                raise bad("expected a string")
            return value
        if kind == "versions":
            if not isinstance(value, list) or not value or any(v not in (1, 2, 3) or isinstance(v, bool) for v in value):
                raise bad("expected a list of report versions from 1, 2, 3")
            return tuple(sorted(set(value)))
        if kind == "chips":
            if not isinstance(value, list) or any(not isinstance(v, str) or not v for v in value):
                raise bad("expected a list of chip ids")
            return tuple(value)
        if kind == "bits":
            if not isinstance(value, list) or any(v not in POLICY_BITS for v in value):
                raise bad(f"expected a list of policy bit names from {', '.join(POLICY_BITS)}")
            return tuple(value)
        if kind == "api":
            return parse_api(value, lambda what: bad(what))
        if kind == "hex32":
            return parse_hex(value, 32, lambda what: bad(what))
        if kind in ("hexlist64", "hexlist16"):
            size = 64 if kind == "hexlist64" else 16
            if not isinstance(value, list):
                raise bad("expected a list of hex strings")
            return tuple(parse_hex(v, size, lambda what: self.fail(path, f"entry {i + 1}: {what}"), pad=size == 64)
                         for i, v in enumerate(value))
        if kind == "file":
            if not isinstance(value, str):
                raise bad("expected a file path")
            return value
        if kind == "datetime":
            return to_utc(value, lambda what: bad(what))
        if kind == "severity":
            if value not in ("warn", "fail"):
                raise bad('expected "warn" or "fail"')
            return value
        raise AssertionError(kind)


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
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                value = date.fromisoformat(value)
            except ValueError:
                raise fail("expected a date or date-time (2026-11-01 or 2026-11-01T12:00:00Z)") from None
    if isinstance(value, datetime):
        return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    if isinstance(value, date):
        return datetime.combine(value, time(0), tzinfo=timezone.utc)
    raise fail("expected a date or date-time")


def _hex_file(path: Path, size: int, loader: _Loader, key: tuple) -> tuple[bytes, ...]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise loader.fail(key, f"cannot read {path}: {exc.strerror}") from None
    values = []
    for no, line in enumerate(text.splitlines(), 1):
        line = line.split("#")[0].strip()
        if line:
            values.append(parse_hex(line, size, lambda what: PolicyError(f"{path}:{no}: {what}"), pad=size == 64))
    return tuple(values)


def load_policy(path: str | Path) -> Policy:
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(f"{path}: cannot read the policy file: {getattr(exc, 'strerror', exc)}") from None
    return parse_policy(text, str(path), path.parent)


def parse_policy(text: str, source: str = "policy", base: Path = Path(".")) -> Policy:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}", hint="fix the syntax at the position named") from None
    ld = _Loader(text, source, base)
    ld.check_keys(doc, "", ())
    if doc.get("version") != 1:
        raise ld.fail(("version",), "required, and must be 1 (the policy format version)")
    rules: dict[str, Rule] = {}

    def put(name: str, value, path: tuple) -> None:
        rules[name] = Rule(value, ld.origin(path))

    for key in ("name", "require_chain", "require_mac", "report_versions"):
        if key in doc:
            put(key, ld.convert(doc[key], SCHEMA[""][key], (key,)), (key,))
    if "measurements" in doc:
        items = doc["measurements"]
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
        put("measurements", tuple(out), ("measurements", 0))
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
                continue
            kind = SCHEMA[table][key]
            converted = ld.convert(value, kind, (table, key))
            if kind == "file":
                size = 64 if key == "user_data_file" else 16
                converted = _hex_file(base / converted, size, ld, (table, key))
                key = key.removesuffix("_file")
                prior = rules.get(f"{table}.{key}")
                converted = (prior.value if prior else ()) + converted
            put(f"{table}.{key}", converted, (table, key))
    return Policy(source=source, rules=rules)


def _deny(ld: _Loader, value) -> tuple[DenyEntry, ...]:
    if not isinstance(value, list):
        raise ld.fail(("chips", "deny"), "expected [[chips.deny]] entries (chip, since, reason)")
    out = []
    for i, item in enumerate(value):
        path = ("chips", "deny", i)
        if isinstance(item, str):
            out.append(DenyEntry(item, None, ""))
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

[chips]
allow = []                      # when non-empty, only these chip ids are accepted
# deny entries apply from `since` (a date or date-time, UTC when no offset is given)
[[chips.deny]]
chip = "EXAMPLECHIP0001"
since = 2026-01-01
reason = "example: chip retired"

[guest_policy]
require = ["NODBG"]             # bits that must be set: NODBG NOKS ES NOSEND DOMAIN CSV CSV3 ASID_REUSE
forbid = []                     # bits that must be clear
allow_debug = false             # a guest without NODBG fails unless this is true

[firmware]
min_api = "1.0"                 # platform firmware API, from the PEK certificate
# min_build = 2339              # V2/V3 reports: firmware build
# min_hsk_version = 1           # version fields of the HSK and CEK certificates in the chain
# min_cek_version = 2

[expect]
# user_data = ["75736572206461746100"]   # hex, zero-padded to 64 bytes; any may match
# user_data_file = "challenges.txt"       # one hex value per line, relative to this file
# mnonce = ["67c6697351ff4aec29cdbaabf2fbe346"]

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
    chain_verified: bool
    mac_status: str  # "pass", "fail" or "skipped"
    pek_api: tuple[int, int] | None
    hsk_version: int | None
    cek_version: int | None
    findings: frozenset  # finding ids
    overridden: frozenset  # quantities given by --expect-* flags: "user_data", "mnonce", "measure"


def policy_fields_implausible(policy_word: int, pek_api: tuple[int, int] | None) -> str | None:
    """A guest policy demanding a newer firmware API than the platform that launched it has."""
    wanted = (policy_word >> 16 & 0xFF, policy_word >> 24 & 0xFF)
    if pek_api is not None and wanted > pek_api:
        return (f"the guest policy asks for firmware API {wanted[0]}.{wanted[1]} or newer, but the platform's PEK "
                f"says {pek_api[0]}.{pek_api[1]}: no genuine launch on this platform has that policy")
    return None


def _fmt_rule(policy: Policy, name: str) -> str:
    return f"{name} ({policy.origin(name)})"


def evaluate(policy: Policy, facts: Facts, add) -> None:
    """Add the policy.* checks through ``add(check_id, status, reason)``; statuses are strings."""
    _requirements(policy, facts, add)
    _allowlist(policy, facts, add, "policy.measurement", "measurements", "measure", facts.report.measure,
               "--expect-measure")
    _allowlist(policy, facts, add, "policy.user_data", "expect.user_data", "user_data", facts.report.report_data,
               "--expect-user-data")
    _allowlist(policy, facts, add, "policy.mnonce", "expect.mnonce", "mnonce", facts.report.mnonce, "--expect-mnonce")
    _chip(policy, facts, add)
    _guest_policy(policy, facts, add)
    _firmware(policy, facts, add)
    _forensics(policy, facts, add)


def _outcome(add, check_id: str, failures: list[str], passes: list[str], empty: str) -> None:
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
    _outcome(add, "policy.requirements", fails, passes, "the policy sets no require_chain, require_mac or report_versions")


def _allowlist(policy: Policy, facts: Facts, add, check_id: str, rule: str, quantity: str, actual: bytes,
               flag: str) -> None:
    accepted = policy.get(rule)
    if not accepted:
        add(check_id, "not-applicable", f"the policy lists no accepted {quantity} values")
        return
    if quantity in facts.overridden:
        add(check_id, "skipped", f"{_fmt_rule(policy, rule)} is overridden by {flag} (checked as expect.{quantity})")
        return
    for item in accepted:
        value, label = (item.value, item.label) if isinstance(item, Measurement) else (item, None)
        if value == actual:
            what = f"matches {label!r}" if label else "matches an accepted value"
            add(check_id, "pass", f"{quantity} {what} from {_fmt_rule(policy, rule)}")
            return
    add(check_id, "fail", f"{quantity} {actual.hex()[:32]}… is none of the {len(accepted)} accepted values of "
                          f"{_fmt_rule(policy, rule)}")


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
    if fails:
        add("policy.chip", "fail", "; ".join(fails))
    else:
        add("policy.chip", "pass", "; ".join(passes) + " (the chip id itself is unsigned: see chip.binding)")


def _guest_policy(policy: Policy, facts: Facts, add) -> None:
    word = facts.report.policy
    names = {name: bool(word >> i & 1) for i, name in enumerate(POLICY_BITS)}
    fails, passes = [], []
    for bit in policy.get("guest_policy.require") or ():
        (passes if names[bit] else fails).append(f"{bit} {'is set' if names[bit] else 'is NOT set'} "
                                                 f"(required by {policy.origin('guest_policy.require')})")
    for bit in policy.get("guest_policy.forbid") or ():
        (fails if names[bit] else passes).append(f"{bit} {'IS set' if names[bit] else 'is clear'} "
                                                 f"(forbidden by {policy.origin('guest_policy.forbid')})")
    if "guest_policy.allow_debug" in policy.rules or fails or passes:
        allowed = policy.get("guest_policy.allow_debug", False)
        if not names["NODBG"] and not allowed:
            origin = policy.origin("guest_policy.allow_debug") if "guest_policy.allow_debug" in policy.rules else "default"
            fails.append(f"NODBG is clear: the guest may be debugged, and allow_debug is false ({origin})")
        elif not names["NODBG"]:
            passes.append(f"NODBG is clear, allowed by {_fmt_rule(policy, 'guest_policy.allow_debug')}")
    if fails and facts.report.version == 1:
        fails.append("(V1: the policy word is decoded with the unsigned anonce)")
    _outcome(add, "policy.guest_policy", fails, passes, "the policy sets no guest-policy rules")


def _firmware(policy: Policy, facts: Facts, add) -> None:
    fails, passes, skips = [], [], []

    def minimum(rule: str, have, label: str, unavailable: str) -> None:
        want = policy.get(rule)
        if want is None:
            return
        shown = f"{want[0]}.{want[1]}" if isinstance(want, tuple) else str(want)
        if have is None:
            skips.append(f"{_fmt_rule(policy, rule)}: {unavailable}")
            return
        have_shown = f"{have[0]}.{have[1]}" if isinstance(have, tuple) else str(have)
        (passes if have >= want else fails).append(f"{label} {have_shown} {'>=' if have >= want else '<'} {shown} "
                                                   f"({policy.origin(rule)})")

    minimum("firmware.min_api", facts.pek_api, "firmware API (PEK)", "the PEK certificate is unusable")
    minimum("firmware.min_build", facts.report.build, "firmware build", "V1 reports carry no build number")
    minimum("firmware.min_hsk_version", facts.hsk_version, "HSK certificate version", "no HSK (needs --chain)")
    minimum("firmware.min_cek_version", facts.cek_version, "CEK certificate version", "no CEK (needs --chain)")
    if fails:
        add("policy.firmware", "fail", "; ".join(fails + skips))
    elif skips:
        add("policy.firmware", "skipped", "; ".join(skips + passes))
    else:
        _outcome(add, "policy.firmware", [], passes, "the policy sets no firmware minimums")


FINDING_OF_FLAG = {
    "sealing_key_present": "sealing-key-present",
    "certs_from_evidence": "certs-from-evidence",
    "v1_without_expectation": "no-expectation",
    "policy_fields_implausible": "policy-fields-implausible",
    "debug_allowed": "debug-allowed",
}


def _forensics(policy: Policy, facts: Facts, add) -> None:
    failing = [flag for flag in FORENSIC_FLAGS if policy.get(f"forensics.{flag}") == "fail"]
    if not failing:
        add("policy.forensics", "not-applicable", "the policy promotes no forensic flag to a failure")
        return
    hit = []
    for flag in failing:
        present = (facts.mac_status == "skipped" if flag == "mac_not_checkable"
                   else FINDING_OF_FLAG[flag] in facts.findings)
        if present:
            hit.append(f"{flag}: {FORENSIC_FLAGS[flag]} ({policy.origin(f'forensics.{flag}')})")
    if hit:
        add("policy.forensics", "fail", "; ".join(hit))
    else:
        add("policy.forensics", "pass", "none of the flags the policy fails on is raised: " + ", ".join(failing))
