"""``db reappraise`` without surprises: the trust settings of the stored verdicts carry over.

Every archived run records the chain, certificate, trust-root, expectation and report-version options it
was given (``recorded_options``, in ``runs.arguments``). Re-appraisal takes those of the latest verdicts
(the *baseline*) for every option the user does not give, checks that they still reproduce the baseline
settings, and refuses new settings that check less than the baseline unless the user says so.
"""

import json
import os
from pathlib import Path
from typing import NamedTuple

from csvverify.errors import UsageError

COLLATERAL = ("chain", "hsk_cek", "hsk", "cek", "certs_dir")  # one group: giving any of them replaces all
EXPECT = ("expect_user_data", "expect_mnonce", "expect_measure")
TRUST = COLLATERAL + ("trust_roots", "report_version") + EXPECT
_FLAGS = {"hsk_cek": "--hsk-cek", "hsk": "--hsk", "cek": "--cek", "certs_dir": "--certs", "trust_roots": "--trust-root",
          "report_version": "--report-version", "expect_user_data": "--expect-user-data",
          "expect_mnonce": "--expect-mnonce", "expect_measure": "--expect-measure"}
NO_CHAIN = "the certificate chain is no longer checked"
_DESC_EXPECT = {"expect_user_data": "user_data", "expect_mnonce": "mnonce", "expect_measure": "measure"}


def given(value) -> bool:
    return value is not None and value != ()


def _path(value):
    return os.path.abspath(value) if value is not None else None


def recorded_options(options: dict) -> dict:
    """The trust options as JSON (absolute paths, hex bytes), for runs.arguments."""
    return {"chain": options.get("chain"), **{k: _path(options.get(k)) for k in COLLATERAL[1:]},
            "trust_roots": [_path(p) for p in options.get("trust_roots") or ()],
            "report_version": options.get("report_version"),
            **{k: [v.hex() for v in options.get(k) or ()] for k in EXPECT}}


def _as_path(value):
    return Path(value) if value is not None else None


def _from_record(rec: dict) -> dict:
    out = {"chain": rec.get("chain"), "report_version": rec.get("report_version"),
           "trust_roots": tuple(Path(p) for p in rec.get("trust_roots") or ())}
    out.update({k: _as_path(rec.get(k)) for k in COLLATERAL[1:]})
    out.update({k: tuple(bytes.fromhex(v) for v in rec.get(k) or ()) for k in EXPECT})
    return out


def _from_description(desc: dict) -> dict:
    """What a settings description alone gives back (runs written before options were recorded): no
    certificate files and no extra trust-root files, whose paths it does not hold."""
    collateral = desc.get("collateral") or {}
    out = {"chain": bool(desc.get("chain")), "hsk_cek": None, "hsk": None, "cek": None,
           "certs_dir": _as_path(collateral.get("certs_dir")), "trust_roots": (),
           "report_version": desc.get("report_version")}
    out.update({k: tuple(bytes.fromhex(v) for v in (desc.get("expect") or {}).get(d) or ())
                for k, d in _DESC_EXPECT.items()})
    if out["report_version"] is not None:
        out["report_version"] = str(out["report_version"])
    return out


class Baseline(NamedTuple):
    settings_sha256: str
    description: dict
    options: dict  # in the CLI's option form (paths, bytes)
    recorded: bool  # options from the run's record (else rebuilt from the description)


def baselines(conn) -> list[Baseline]:
    """The settings of the latest verdict of every report that can be re-appraised (bytes stored)."""
    out = []
    for (sha,) in conn.execute(
            "SELECT DISTINCT v.settings_sha256 FROM reports r JOIN verdicts v ON v.id = "
            "(SELECT MAX(id) FROM verdicts WHERE report_sha256 = r.sha256) WHERE r.bytes IS NOT NULL "
            "ORDER BY v.settings_sha256"):
        row = conn.execute("SELECT description FROM settings WHERE sha256 = ?", (sha,)).fetchone()
        desc = json.loads(row[0]) if row else {}
        options, recorded = _from_description(desc), False
        for (arguments,) in conn.execute("SELECT arguments FROM runs WHERE settings_sha256 = ? ORDER BY id DESC",
                                         (sha,)):
            rec = (json.loads(arguments or "{}") or {}).get("options")
            if rec:
                options, recorded = _from_record(rec), True
                break
        out.append(Baseline(sha, desc, options, recorded))
    return out


def _describe(key: str, value) -> str:
    if key == "chain":
        return "--chain" if value else ("--no-chain" if value is False else "")
    if key in EXPECT:
        return f"{_FLAGS[key]} ({len(value)} value{'s' if len(value) != 1 else ''})"
    if key == "trust_roots":
        return " ".join(f"--trust-root {p}" for p in value)
    return f"{_FLAGS[key]} {value}"


def unusable(carried: list[str], exc) -> UsageError:
    """The error for options carried over that no longer work (``exc``: why, e.g. a file since moved)."""
    return UsageError(f"the options carried over from the stored verdicts ({', '.join(carried)}) cannot be used: "
                      f"{exc.message}", hint="give the chain, trust-root and expectation options explicitly")


def carry_over(explicit: dict, bases: list[Baseline]) -> tuple[dict, list[str]]:
    """Options for every trust option not given explicitly, from the baseline; and what was carried, as
    flags. Baselines that disagree on an option not given leave it ambiguous: a usage error."""
    groups = [("collateral", COLLATERAL), ("trust_roots", ("trust_roots",)), ("report_version", ("report_version",))]
    groups += [(k, (k,)) for k in EXPECT]  # each group carries over whole, or not at all
    merged, carried = {}, []
    for _, keys in groups:
        if any(given(explicit.get(k)) for k in keys) or not bases:
            continue
        values = {json.dumps([_jsonable(b.options.get(k)) for k in keys]) for b in bases}
        if len(values) > 1:
            raise UsageError(f"the stored verdicts were reached under {len(bases)} different settings that disagree "
                             f"on {', '.join(_FLAGS.get(k, '--chain') for k in keys)}: re-appraisal cannot carry "
                             f"that over", hint="give those options explicitly")
        for k in keys:
            merged[k] = bases[0].options.get(k)
            text = _describe(k, merged[k]) if given(merged[k]) else ""
            if text:
                carried.append(text)
    return merged, carried


def _jsonable(value):
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.hex()
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def weaker_than(new: dict, base: dict) -> list[str]:
    """How settings description ``new`` checks less than ``base`` (empty: not weaker)."""
    found = []
    if base.get("chain") and not new.get("chain"):
        found.append(NO_CHAIN)
    old_roots, new_roots = set(base.get("trust_roots") or ()), set(new.get("trust_roots") or ())
    if not new.get("chain"):  # roots mean nothing without the chain (the store's are then not even loaded)
        old_roots = new_roots = set()
    if old_roots - new_roots:
        found.append(f"{len(old_roots - new_roots)} trust root(s) of the baseline are no longer trusted")
    if new_roots - old_roots:
        found.append(f"{len(new_roots - old_roots)} trust root(s) are trusted that the baseline did not trust")
    for kind, values in (base.get("expect") or {}).items():
        if values and not (new.get("expect") or {}).get(kind):
            found.append(f"the expected {kind.replace('_', ' ')} is no longer checked")
    if base.get("policy_sha256") and not new.get("policy_sha256"):
        found.append("the baseline's appraisal policy is no longer applied (pass --policy again)")
    return found


def _without_env(collateral):
    return {k: v for k, v in (collateral or {}).items() if k != "standard_paths"} if collateral else collateral


def check_against(new: dict, bases: list[Baseline], explicit: dict, weaker: bool) -> list[str]:
    """Refuse (UsageError) carried-over certificates that no longer reproduce a baseline, and settings weaker
    than a baseline unless ``weaker`` (or, for the chain alone, an explicit --no-chain). Returns the
    weakenings accepted."""
    accepted = []
    collateral_given = any(given(explicit.get(k)) for k in COLLATERAL)
    for base in bases:
        old = base.description
        if not collateral_given and _without_env(new.get("collateral")) != _without_env(old.get("collateral")):
            source = "" if base.recorded else " (the baseline's run did not record its certificate files)"
            raise UsageError(f"the certificates of the baseline settings {base.settings_sha256[:16]}… cannot be "
                             f"carried over: they no longer give the same collateral{source}",
                             hint="give --chain with --certs, --hsk-cek or --hsk/--cek explicitly")
        problems = weaker_than(new, old)
        if explicit.get("chain") is False:
            problems = [p for p in problems if p != NO_CHAIN]
        if problems and not weaker:
            raise UsageError(f"the new settings check less than the stored verdicts' settings "
                             f"{base.settings_sha256[:16]}…: {'; '.join(problems)}",
                             hint="pass the missing options, or --weaker to re-appraise with less checking anyway")
        accepted += [p for p in problems if p not in accepted]
    if explicit.get("chain") is False and any(b.description.get("chain") for b in bases):
        accepted.insert(0, f"{NO_CHAIN} (--no-chain)")
    return accepted
