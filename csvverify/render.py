"""Text and JSON renderings of verdicts and decoded reports (plain strings; the CLI prints them)."""

import json

from csvverify import __version__
from csvverify.certs import CsvCert, ascii_text, usage_name
from csvverify.errors import InputError
from csvverify.report import Report
from csvverify.text import printable
from csvverify.verdict import SCHEMA, ExitClass, Status, Verdict

_CLASS_TEXT = {
    ExitClass.INPUT: "unreadable or unparseable input",
    ExitClass.SIGNATURE: "signature, chain or integrity failure",
    ExitClass.COLLATERAL: "collateral missing",
    ExitClass.EXPECTATION: "expectation not met",
    ExitClass.POLICY: "policy not met",
}
_MARK = {Status.PASS: "pass", Status.FAIL: "FAIL", Status.SKIPPED: "skip", Status.NOT_APPLICABLE: "n/a"}


def verdict_text(verdict: Verdict, verbose: bool = True) -> str:
    """Every line is passed through ``printable``: reasons quote report fields that no signature covers."""
    return "\n".join(printable(line) for line in _verdict_lines(verdict, verbose))


def _verdict_lines(verdict: Verdict, verbose: bool) -> list[str]:
    cls = verdict.exit_class
    if cls is ExitClass.OK:
        head = f"OK: {verdict.input}"
    else:
        head = f"FAIL: {verdict.input} ({verdict.outcome}: {_CLASS_TEXT[cls]}, exit class {int(cls)})"
    if verdict.report:
        head += f"  [V{verdict.report['version']}, chip {verdict.report['chip_id'] or '?'}]"
        if any(f.id == "not-a-report" for f in verdict.findings):
            head += "  (does not look like a CSV report)"
    lines = [head]
    if verbose:
        width = max(len(c.id) for c in verdict.checks)
        shown = verdict.checks if verdict.report else verdict.failed
        if verdict.policy is None:  # without a policy the eight policy.* checks are one line
            shown = [c for c in shown if not c.id.startswith("policy.")]
        for c in shown:
            lines.append(f"  {_MARK[c.status]:<5} {c.id:<{width}}  {c.reason}")
        if verdict.policy is not None:
            p = verdict.policy
            lines.append(f"  policy  {p['source'] or 'command-line rules'} (sha256 {p['sha256'][:16]}…, "
                         f"as of {p['as_of']})")
        elif verdict.report:
            lines.append(f"  {_MARK[Status.NOT_APPLICABLE]:<5} {'policy.*':<{width}}  no policy given")
        for f in verdict.findings:
            lines.append(f"  {f.severity:<7} {f.id}: {f.message}")
    elif verdict.failed:
        lines.extend(f"  FAIL  {c.id}: {c.reason}" for c in verdict.failed)
    if verdict.hint:
        lines.append(f"  hint: {verdict.hint}")
    return lines


def verdicts_json(verdicts: list[Verdict]) -> str:
    return json.dumps({"schema": SCHEMA, "tool": {"name": "csvverify", "version": __version__},
                       "verdicts": [v.to_dict() for v in verdicts]}, indent=2)


def _policy_bits(policy: int) -> str:
    names = ["NODBG", "NOKS", "ES", "NOSEND", "DOMAIN", "CSV", "CSV3", "ASID_REUSE"]
    flags = [n for i, n in enumerate(names) if policy >> i & 1]
    return (f"{policy:#010x} [{' '.join(flags) or 'no flags'}; HSK_VERSION {policy >> 8 & 0xF}, "
            f"CEK_VERSION {policy >> 12 & 0xF}, API_MAJOR {policy >> 16 & 0xFF}, API_MINOR {policy >> 24 & 0xFF}]")


def _cert_lines(cert: CsvCert, name: str) -> list[tuple[str, str]]:
    rows = [
        (f"{name}.version", str(cert.version)),
        (f"{name}.api", f"{cert.api_major}.{cert.api_minor}"),
        (f"{name}.pubkey_usage", f"{cert.pubkey_usage:#06x} ({usage_name(cert.pubkey_usage)})"),
        (f"{name}.pubkey_algo", str(cert.pubkey_algo)),
        (f"{name}.curve_id", str(cert.curve_id)),
        (f"{name}.uid", f"'{cert.uid_text}'"),
        (f"{name}.qx", f"{cert.key.x:064x}"),
        (f"{name}.qy", f"{cert.key.y:064x}"),
        (f"{name}.certifying_id", cert.certifying_id.hex()),
    ]
    for slot in cert.slots:
        rows.append((f"{name}.slot{slot.index}", f"usage {slot.usage:#06x} ({usage_name(slot.usage)}), algo {slot.algo}"))
    return rows


def report_rows(report: Report, container: str) -> list[tuple[str, str]]:
    """Every decoded field as (name, value); the sealing key is never shown, only whether it is present."""
    rows = [
        ("container", container),
        ("version", f"V{report.version} ({report.layout_source})"),
        ("size", f"{len(report.raw)} bytes" + (f" + {len(report.trailing)} bytes page padding" if report.trailing else "")),
    ]
    if report.version == 1:
        rows.append(("anonce", f"{report.anonce:#010x} (unsigned; fields below are de-obfuscated with it)"))
    rows += [
        ("chip_id", report.chip_id),
        ("user_pubkey_digest", report.user_pubkey_digest.hex()),
        ("vm_id", report.vm_id.hex()),
        ("vm_version", report.vm_version.hex()),
        ("user_data", report.report_data.hex()),
        ("user_data (text)", ascii_text(report.report_data.rstrip(b"\0"))),
        ("mnonce", report.mnonce.hex()),
        ("measure", report.measure.hex()),
        ("policy", _policy_bits(report.policy)),
        ("sig_usage", f"{report.sig_usage:#06x} ({usage_name(report.sig_usage)})"),
        ("sig_algo", str(report.sig_algo)),
        ("signature.r", f"{report.signature.r:064x}"),
        ("signature.s", f"{report.signature.s:064x}"),
    ]
    if report.version != 1:
        rows += [("build", str(report.build)), ("rtmr_version", str(report.rtmr_version))]
        rows += [(f"rtmr{i}", r.hex()) for i, r in enumerate(report.rtmrs)]
        if report.host_data is not None:
            rows.append(("host_data", report.host_data.hex()))
    try:
        rows += _cert_lines(report.pek(), "pek")
    except InputError as exc:
        rows.append(("pek", f"unparseable: {exc.message}"))
    rows += [
        ("sealing_key", "PRESENT (the VM's sealing key leaked into this file; value not shown)"
         if report.sealing_key_present else "blanked"),
        ("mac", report.mac.hex()),
    ]
    return rows


def report_text(report: Report, container: str, name: str) -> str:
    rows = report_rows(report, container)
    width = max(len(k) for k, _ in rows)
    return "\n".join(printable(line) for line in [f"{name}:"] + [f"  {k:<{width}}  {v}" for k, v in rows])


def report_json(report: Report, container: str, name: str) -> str:
    fields = report.summary()
    fields["container"] = container
    try:
        pek = report.pek()
        fields["pek"] = {k.split(".", 1)[1]: v for k, v in _cert_lines(pek, "pek")}
    except InputError as exc:
        fields["pek"] = {"error": exc.message}
    return json.dumps({"schema": "csvverify/report/v1", "input": name, "report": fields}, indent=2)


def _root_rows(cert, name: str) -> list[tuple[str, str]]:
    return [
        (f"{name}.version", str(cert.version)),
        (f"{name}.key_id", cert.key_id.hex()),
        (f"{name}.certifying_id", cert.certifying_id.hex()),
        (f"{name}.key_usage", f"{cert.key_usage:#06x} ({usage_name(cert.key_usage)})"),
        (f"{name}.curve_id", str(cert.curve_id)),
        (f"{name}.uid", f"'{cert.uid_text}'"),
        (f"{name}.qx", f"{cert.key.x:064x}"),
        (f"{name}.qy", f"{cert.key.y:064x}"),
    ]


def certificate_report(data: bytes, name: str, roots, as_json: bool) -> str:
    """Decode a certificate file and say what it is and what it chains to."""
    from csvverify.certs import (CSV_CERT_SIZE, HSK_CEK_SIZE, ROOT_CERT_SIZE, parse_csv_cert, parse_root_cert)
    from csvverify.trust import is_pinned, key_fingerprint, self_signed_root_problems
    from csvverify.verify import Collateral, check_collateral

    rows: list[tuple[str, str]] = [("file", name), ("size", f"{len(data)} bytes")]
    if len(data) == ROOT_CERT_SIZE:
        cert = parse_root_cert(data, name)
        rows += _root_rows(cert, "cert")
        rows.append(("fingerprint", key_fingerprint(cert.key, cert.uid, name)))
        if cert.key_id == cert.certifying_id:
            problems = self_signed_root_problems(cert)
            verdict = ("the pinned Hygon root key" if is_pinned(cert) and not problems else
                       "a self-signed root that is NOT the pinned Hygon root: not trusted unless named with "
                       "--trust-root" if not problems else "an invalid self-signed root: " + "; ".join(problems))
        else:
            root = roots.for_key_id(cert.certifying_id)
            verdict = (f"issued by {root.describe()}" if root else
                       f"issued by key id {cert.certifying_id.hex()}, which is not a trusted root")
        rows.append(("verdict", verdict))
    elif len(data) == CSV_CERT_SIZE:
        cert = parse_csv_cert(data, name)
        rows += _cert_lines(cert, "cert")
        rows.append(("verdict", "a CSV certificate; its signer's certificate is needed to check it "
                                "(for a CEK: pass the hsk_cek.cert)"))
    elif len(data) == HSK_CEK_SIZE:
        hsk, cek = parse_root_cert(data[:ROOT_CERT_SIZE], name), parse_csv_cert(data[ROOT_CERT_SIZE:], name)
        rows += _root_rows(hsk, "hsk") + _cert_lines(cek, "cek")
        checks, problems = check_collateral(Collateral(hsk.raw, cek.raw, name, name), roots)
        rows += [(f"check {c.id}", f"{c.status.value}: {c.reason}") for c in checks.checks
                 if c.status is not Status.SKIPPED]
        rows.append(("verdict", "chains to " + checks.check("root.pinned").reason.removeprefix("the HSK's issuer is ")
                     if not problems else "does NOT chain to a trusted root"))
    else:
        raise InputError(f"{name}: {len(data)} bytes is not a certificate (832 HRK/HSK, 2084 CEK/PEK, "
                         f"2916 hsk_cek)")
    if as_json:
        return json.dumps({"schema": "csvverify/certificate/v1", "fields": dict(rows)}, indent=2)
    width = max(len(k) for k, _ in rows)
    return "\n".join(printable(f"{k:<{width}}  {v}") for k, v in rows)
