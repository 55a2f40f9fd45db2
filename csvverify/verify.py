"""Verification as a pure function: a parsed report + collateral bytes + trust roots + expectations → Verdict.

No I/O happens here (collateral is looked up by ``csvverify.collateral``). Every rule is its own check;
nothing stops at the first failure. See docs/verification.md for what each check proves and what it
does not.
"""

from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import quote

from csvverify import sm2
from csvverify.certs import (ALGO_SM2_SA, CURVE_SM2, USAGE_CEK, USAGE_HSK, USAGE_INVALID, USAGE_OCA, USAGE_PEK,
                             CsvCert, RootCert, Signature, ascii_text, parse_csv_cert, parse_root_cert, usage_name)
from csvverify.errors import InputError
from csvverify.hashing import hmac_sm3
from csvverify.policy import Facts, Policy, evaluate, policy_fields_implausible
from csvverify.report import Report
from csvverify.trust import PINNED_HRK, TrustedRoot, TrustRoots
from csvverify.verdict import CHECKS, Check, Finding, Status, Verdict, VerdictBuilder

KDS_HSK_CEK_URL = "https://cert.hygon.cn/hsk_cek?snumber={chip_id}"

PASS, FAIL, SKIPPED, NA = Status.PASS, Status.FAIL, Status.SKIPPED, Status.NOT_APPLICABLE
_HSK_CHECKS = ("root.pinned", "hsk.usage", "hsk.signature")
_CEK_CHECKS = ("cek.usage", "cek.issuer", "cek.signature")
_POLICY_CHECKS = tuple(cid for cid in CHECKS if cid.startswith("policy."))


@dataclass(frozen=True)
class Expectations:
    """Accepted values; each tuple is "any of these". user_data entries are zero-padded to 64 bytes."""

    user_data: tuple[bytes, ...] = ()
    mnonce: tuple[bytes, ...] = ()
    measure: tuple[bytes, ...] = ()

    @property
    def any(self) -> bool:
        return bool(self.user_data or self.mnonce or self.measure)


@dataclass(frozen=True)
class Collateral:
    """HSK and CEK bytes for the chain, with where each came from. A missing part is None."""

    hsk: bytes | None = None
    cek: bytes | None = None
    hsk_source: str = ""
    cek_source: str = ""
    looked_in: tuple[str, ...] = ()  # places searched, for the hint when something is missing
    chip_id: str | None = None  # the chip id the certificates were filed under, when there was one
    from_evidence: bool = False  # supplied by the evidence itself (the prover), not by the verifier


@dataclass(frozen=True)
class Claims:
    """What an evidence envelope says besides the report (checked against the report's own copies)."""

    shape: str = ""
    serial_number: str | None = None
    pek: bytes | None = None
    pek_from_envelope: bool = False  # the report's PEK slot was filled from the envelope (legacy JSON)
    chip_id_from_envelope: bool = False  # the report's chip id is a copy of serial_number (legacy JSON)


def _first_difference(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _mismatch(label: str, actual: bytes, accepted: tuple[bytes, ...], shown: int = 3) -> str:
    """Full values (at most 64 bytes each) and where each expected value first differs."""
    if len(accepted) == 1:
        return (f"{label} {actual.hex()} is not the expected {accepted[0].hex()} "
                f"(first difference at byte {_first_difference(actual, accepted[0])})")
    listed = ", ".join(f"#{i} {want.hex()} (differs from byte {_first_difference(actual, want)})"
                       for i, want in enumerate(accepted[:shown], 1))
    more = f", and {len(accepted) - shown} more" if len(accepted) > shown else ""
    return f"{label} {actual.hex()} matches none of the {len(accepted)} expected values: {listed}{more}"


def _signature_problem(key: sm2.PublicKey, uid: bytes, curve_id: int, message: bytes, sig: Signature) -> str | None:
    """Why the signature does not verify; ``curve_id`` is what the signer's certificate names."""
    if curve_id != CURVE_SM2:
        return f"the signer's certificate names curve_id {curve_id}, not {CURVE_SM2} (SM2): unknown curve"
    if sig.padding_faults:
        return "; ".join(sig.padding_faults) + " (padding lies outside every signature)"
    try:
        sm2.check(key, uid, message, sig.r, sig.s)
    except sm2.SignatureError as exc:
        return str(exc)
    return None


def _verified(signer: str, uid: bytes) -> str:
    return f"verifies with {signer}'s key (SM2, user id '{ascii_text(uid)}')"


def _signature_check(b: VerdictBuilder, check_id: str, signer: str, key: sm2.PublicKey, uid: bytes, curve_id: int,
                     message: bytes, sig: Signature, what: str) -> bool:
    problem = _signature_problem(key, uid, curve_id, message, sig)
    if problem:
        b.add(check_id, FAIL, f"{what} by {signer}: {problem}")
        return False
    b.add(check_id, PASS, f"{what} {_verified(signer, uid)}")
    return True


def _key_problems(cert: RootCert | CsvCert) -> list[str]:
    problems = list(cert.padding_faults)
    if cert.curve_id != CURVE_SM2:
        problems.append(f"curve_id {cert.curve_id} is not {CURVE_SM2} (SM2); unknown curves are rejected")
    if not problems:
        try:
            sm2.validate_public_key(cert.key)
        except sm2.SignatureError as exc:
            problems.append(str(exc))
    return problems


def _csv_usage_problems(cert: CsvCert, usage: int) -> list[str]:
    problems = []
    if cert.pubkey_usage != usage:
        problems.append(f"pubkey_usage {cert.pubkey_usage:#06x} ({usage_name(cert.pubkey_usage)}) "
                        f"is not {usage:#06x} ({usage_name(usage)})")
    if cert.pubkey_algo != ALGO_SM2_SA:
        problems.append(f"pubkey_algo {cert.pubkey_algo} is not {ALGO_SM2_SA} (SM2-SA)")
    return problems + _key_problems(cert)


def _slot_signature(b: VerdictBuilder, check_id: str, cert: CsvCert, signer_usage: int, signer: str,
                    signer_cert: CsvCert | RootCert, what: str) -> bool:
    """A CSV certificate is signed in any slot carrying the signer's usage and SM2-SA (the safe superset)."""
    slots = cert.slots_for(signer_usage)
    if not slots:
        found = ", ".join(f"slot {s.index}: {s.usage:#06x}/{s.algo}" for s in cert.slots)
        b.add(check_id, FAIL, f"{what}: no signature slot with usage {signer_usage:#06x} ({usage_name(signer_usage)}) "
                              f"and algo {ALGO_SM2_SA} ({found})")
        return False
    problems = []
    key, uid = signer_cert.key, signer_cert.uid
    for slot in slots:
        problem = _signature_problem(key, uid, signer_cert.curve_id, cert.signed_bytes, slot.signature)
        if problem is None:
            b.add(check_id, PASS, f"{what} (slot {slot.index}) {_verified(signer, uid)}")
            return True
        problems.append(f"slot {slot.index}: {problem}")
    b.add(check_id, FAIL, f"{what} by {signer}: " + "; ".join(problems))
    return False


def _chain(b: VerdictBuilder, chip_id: str, collateral: Collateral | None,
           roots: TrustRoots) -> tuple[RootCert | None, CsvCert | None]:
    """Root → HSK → CEK checks. Returns the HSK and CEK that could be parsed (the CEK's key signs the PEK)."""
    hsk_raw = collateral.hsk if collateral else None
    cek_raw = collateral.cek if collateral else None
    missing = [name for name, blob in (("HSK", hsk_raw), ("CEK", cek_raw)) if blob is None]
    if missing:
        _missing_collateral(b, chip_id, collateral, missing)
    else:
        b.add("collateral", PASS, f"HSK from {collateral.hsk_source}; CEK from {collateral.cek_source}")
    hsk = cek = None
    if hsk_raw is not None:
        hsk = _parse(b, parse_root_cert, hsk_raw, collateral.hsk_source, "HSK", _HSK_CHECKS)
    if cek_raw is not None:
        cek = _parse(b, parse_csv_cert, cek_raw, collateral.cek_source, "CEK", _CEK_CHECKS)
    if hsk is not None:
        _hsk_checks(b, hsk, roots)
    if cek is not None:
        _cek_checks(b, cek, hsk, "missing" if hsk_raw is None else "could not be parsed")
    return hsk, cek


class _Recorded(NamedTuple):
    """What a step added to a verdict, to add again to another verdict with the same inputs."""

    checks: tuple[Check, ...]
    findings: tuple[Finding, ...]
    hint: str | None
    result: object


# A batch sees the same few collateral files and PEKs in report after report. The chain and PEK checks depend
# only on the arguments in their keys (the steps are pure), so their records are reused; bounded, and cleared
# whole when full.
_REMEMBERED: dict[tuple, _Recorded] = {}
REMEMBER_LIMIT = 512


def _remembered(b: VerdictBuilder, key: tuple, step, *args):
    """Run ``step(builder, *args)`` once per key; add what it added (checks, findings, hint) to ``b``."""
    record = _REMEMBERED.get(key)
    if record is None:
        scratch = VerdictBuilder(b.verdict.input, b.verdict.sha256)
        result = step(scratch, *args)
        record = _Recorded(scratch.checks, tuple(scratch.verdict.findings), scratch.verdict.hint, result)
        if len(_REMEMBERED) >= REMEMBER_LIMIT:
            _REMEMBERED.clear()
        _REMEMBERED[key] = record
    for check in record.checks:
        b.add_check(check)
    b.verdict.findings.extend(record.findings)
    if record.hint is not None:
        b.verdict.hint = record.hint
    return record.result


def _missing_collateral(b: VerdictBuilder, chip_id: str, collateral: Collateral | None, missing: list[str]) -> None:
    chip = chip_id or "(empty chip id)"
    looked = "; looked in " + ", ".join(collateral.looked_in) if collateral and collateral.looked_in else ""
    what = " and ".join(missing) + (" certificates" if len(missing) > 1 else " certificate")
    b.add("collateral", FAIL, f"no {what} for chip {chip}{looked}")
    url = KDS_HSK_CEK_URL.format(chip_id=quote(chip_id, safe=""))
    b.verdict.hint = (f"download {url} on a connected machine (or run `csvverify certs fetch --chip-id {chip}` "
                      f"where the KDS is reachable) and import it with `csvverify certs import FILE --chip-id "
                      f"{chip}`; or pass it with --hsk-cek FILE, or place it at DIR/{chip}/hsk_cek.cert and use "
                      "--certs DIR")
    skipped = (_HSK_CHECKS if "HSK" in missing else ()) + (_CEK_CHECKS if "CEK" in missing else ())
    for cid in skipped:
        b.add(cid, SKIPPED, f"not run: no {what}")


def _hsk_checks(b: VerdictBuilder, hsk: RootCert, roots: TrustRoots) -> None:
    root = _root_check(b, hsk, roots)
    problems = _key_problems(hsk)
    if hsk.key_usage != USAGE_HSK:
        problems.insert(0, f"key_usage {hsk.key_usage:#06x} ({usage_name(hsk.key_usage)}) is not {USAGE_HSK:#06x} (HSK)")
    b.add("hsk.usage", FAIL if problems else PASS,
          "; ".join(problems) if problems else f"usage HSK, SM2 key, user id '{hsk.uid_text}'")
    signer = root or PINNED_HRK  # trusted roots are SM2 roots (trust.py checks an extra root's curve)
    _signature_check(b, "hsk.signature", "the pinned Hygon root" if signer.pinned else f"root {signer.key_id.hex()}",
                     signer.key, signer.uid, CURVE_SM2, hsk.signed_bytes, hsk.signature, "HSK signature")


def _cek_checks(b: VerdictBuilder, cek: CsvCert, hsk: RootCert | None, hsk_absent: str) -> None:
    problems = _csv_usage_problems(cek, USAGE_CEK)
    odd = [f"CEK slot {s.index} carries usage {s.usage:#06x}, expected INVALID (empty)"
           for s in cek.slots if s.usage not in (USAGE_HSK, USAGE_INVALID)]
    if sum(s.usage == USAGE_HSK for s in cek.slots) > 1:
        odd.append("both CEK slots carry usage HSK (0x0013); the slot that does not sign should be INVALID (empty)")
    if odd:
        b.finding("cek-unexpected-slot", "warning", "; ".join(odd))
    b.add("cek.usage", FAIL if problems else PASS,
          "; ".join(problems) if problems else f"usage CEK, SM2-SA, SM2 key, user id '{cek.uid_text}'")
    if hsk is None:
        b.add("cek.issuer", SKIPPED, f"not run: the HSK certificate {hsk_absent}")
        b.add("cek.signature", SKIPPED, f"not run: the HSK certificate {hsk_absent}")
        return
    if cek.certifying_id == hsk.key_id:
        b.add("cek.issuer", PASS, f"CEK certifying id equals the HSK key id {hsk.key_id.hex()}")
    else:
        b.add("cek.issuer", FAIL, f"CEK certifying id {cek.certifying_id.hex()} is not the HSK key id {hsk.key_id.hex()}")
    _slot_signature(b, "cek.signature", cek, USAGE_HSK, "the HSK", hsk, "CEK signature")


def _parse(b: VerdictBuilder, parser, raw: bytes, source: str, name: str, check_ids: tuple[str, ...]):
    """A collateral certificate, or None with its checks failed for the reason it cannot be parsed."""
    try:
        return parser(raw, source)
    except InputError as exc:
        for cid in check_ids:
            b.add(cid, FAIL, f"{name} certificate unusable: {exc.message}")
        return None


def _root_check(b: VerdictBuilder, hsk: RootCert, roots: TrustRoots) -> TrustedRoot | None:
    root = roots.for_key_id(hsk.certifying_id)
    if root is None:
        b.add("root.pinned", FAIL,
              f"the HSK's issuer key id {hsk.certifying_id.hex()} is not the pinned Hygon root key "
              f"({PINNED_HRK.key_id.hex()}) nor a root trusted explicitly (--trust-root, certs import --root); "
              "a self-signed root is never trusted")
        return None
    b.add("root.pinned", PASS, f"the HSK's issuer is {root.describe()}")
    if not root.pinned:
        b.finding("extra-root", "warning",
                  f"the chain ends at an extra root from {root.source}, not at the Hygon root: "
                  f"this verdict holds only as far as that root is trusted")
    return root


def _pek(b: VerdictBuilder, report: Report, cek: CsvCert | None, chain: bool) -> CsvCert | None:
    try:
        pek = report.pek()
    except InputError as exc:
        for cid in ("pek.usage", "pek.signature", "pek.oca"):
            b.add(cid, FAIL, f"the report's PEK certificate is unusable: {exc.message}")
        return None
    problems = _csv_usage_problems(pek, USAGE_PEK)
    b.add("pek.usage", FAIL if problems else PASS,
          "; ".join(problems) if problems else
          f"usage PEK, SM2-SA, SM2 key, user id '{pek.uid_text}', firmware API {pek.api_major}.{pek.api_minor}")
    if not chain:
        b.add("pek.signature", SKIPPED, "not run: --chain not requested, so the PEK is not proven to come from "
                                        "Hygon hardware")
    elif cek is None:
        b.add("pek.signature", SKIPPED, "not run: no usable CEK certificate")
    else:
        _slot_signature(b, "pek.signature", pek, USAGE_CEK, "the CEK", cek, "PEK signature")
    oca = [s for s in pek.slots if s.usage == USAGE_OCA]
    if oca:
        b.add("pek.oca", SKIPPED, "the PEK carries an owner (OCA) signature in slot "
                                  f"{oca[0].index}; checking it needs the platform owner's OCA certificate, "
                                  "which is not part of the Hygon chain")
    else:
        b.add("pek.oca", NA, "the PEK carries no owner (OCA) signature")
    return pek


def _report_checks(b: VerdictBuilder, report: Report, pek: CsvCert | None) -> None:
    unsigned = " (outside the V1 signature: a sanity check only)" if report.version == 1 else ""
    problems = []
    if report.sig_usage != USAGE_PEK:
        problems.append(f"sig_usage {report.sig_usage:#06x} is not {USAGE_PEK:#06x} (PEK)")
    if report.sig_algo != ALGO_SM2_SA:
        problems.append(f"sig_algo {report.sig_algo} is not {ALGO_SM2_SA} (SM2-SA)")
    b.add("report.signature_fields", FAIL if problems else PASS,
          ("; ".join(problems) if problems else "sig_usage PEK, sig_algo SM2-SA") + unsigned)
    if pek is None:
        b.add("report.signature", FAIL, "no usable PEK in the report to check its signature with")
        return
    span = f"[0,{report.layout.signed_end})"
    _signature_check(b, "report.signature", "the PEK", pek.key, pek.uid, pek.curve_id, report.signed_bytes,
                     report.signature, f"report signature over {span}")


def _mac_check(b: VerdictBuilder, report: Report) -> None:
    lay = report.layout
    if not report.sealing_key_present:
        b.add("report.mac", SKIPPED, f"the sealing-key field at {lay.sealing_key_offset} is blanked (as a correct "
                                     "collector leaves it), so the MAC over it cannot be recomputed")
        return
    expected = hmac_sm3(report.mnonce, report.mac_message)
    span = f"[{lay.signer_offset},{lay.mac_offset})"
    if expected == report.mac:
        b.add("report.mac", PASS, f"HMAC-SM3 over {span} keyed with the report's mnonce matches (integrity only: "
                                  "the key is inside the report)")
    else:
        b.add("report.mac", FAIL, f"HMAC-SM3 over {span} keyed with the report's mnonce does not match the stored "
                                  f"MAC: the PEK, chip id or sealing-key field was altered or damaged")


def _expect(b: VerdictBuilder, check_id: str, label: str, option: str, actual: bytes, accepted: tuple[bytes, ...],
            v1_note: str) -> None:
    if not accepted:
        b.add(check_id, SKIPPED, f"no {option} given: the {label} is not checked{v1_note}")
        return
    for i, want in enumerate(accepted, 1):
        if actual == want:
            which = f" #{i} of {len(accepted)}" if len(accepted) > 1 else ""
            b.add(check_id, PASS, f"{label} equals the expected value{which}")
            return
    b.add(check_id, FAIL, _mismatch(label, actual, accepted))


def _not_a_report(b: VerdictBuilder, report: Report) -> None:
    """The layout was taken from the size (or given) but no PEK sits where it should: likely not a report."""
    usage, algo, curve = report.pek_words
    obfuscated = " (de-obfuscated with anonce, or in clear)" if report.version == 1 else ""
    b.finding("not-a-report", "warning",
              f"does not look like a CSV report: the PEK certificate at offset {report.layout.signer_offset}"
              f"{obfuscated} reads usage {usage:#06x}, algo {algo}, curve {curve} where a PEK has "
              f"{USAGE_PEK:#06x}, {ALGO_SM2_SA}, {CURVE_SM2}; " +
              (f"it was read as {'V1' if report.version == 1 else 'V2/V3'} by its size ({len(report.raw)} bytes) "
               "alone" if report.layout_from_size else f"its layout was given ({report.layout_source})"))


def verify(report: Report, *, input_name: str, input_sha256: str | None, roots: TrustRoots = TrustRoots(),
           chain: bool = False, collateral: Collateral | None = None,
           expect: Expectations = Expectations(), claims: Claims = Claims(),
           policy: Policy | None = None) -> Verdict:
    b = VerdictBuilder(input_name, input_sha256)
    size_note = f" in a {len(report.raw) + len(report.trailing)}-byte page" if report.trailing else ""
    b.add("format", PASS, f"V{report.version} report, {len(report.raw)} bytes{size_note} ({report.layout_source})")
    if any(report.trailing):
        b.finding("nonzero-padding", "warning", f"the page padding after byte {len(report.raw)} is not zero")
    if not report.pek_at_layout:
        _not_a_report(b, report)
    if report.signer_block_clear:
        b.finding("signer-block-cleared", "info", "the PEK and chip id were already de-obfuscated by the collector "
                                                  "(the CoCo evidence shape); they were re-obfuscated for the MAC")

    if chain:  # keyed by every argument of _chain: the chip id only names the chip in a missing-collateral hint
        hsk, cek = _remembered(b, ("chain", report.chip_id, collateral, roots), _chain, report.chip_id, collateral,
                               roots)
    else:
        hsk, cek = None, None
        for cid in ("collateral",) + _HSK_CHECKS + _CEK_CHECKS:
            b.add(cid, SKIPPED, "not run: --chain not requested")
        b.finding("pek-unproven", "warning", "without --chain the PEK is not proven to come from Hygon hardware: "
                                             "the report signature only shows consistency with the PEK it carries")
    # _pek reads the report's PEK bytes only; a parsed CEK is determined by its bytes.
    pek = _remembered(b, ("pek", report.pek_raw, cek.raw if cek is not None else None, chain), _pek, report, cek,
                      chain)
    _report_checks(b, report, pek)
    _mac_check(b, report)
    _chip_binding(b, report, collateral if chain else None, claims)
    _claim_findings(b, report, collateral if chain else None, claims)
    _reserved_findings(b, [("HSK", hsk), ("CEK", cek), ("PEK", pek)])

    v1_note = "; in V1 decoded fields depend on the unsigned anonce" if report.version == 1 else ""
    _expect(b, "expect.user_data", "user data", "--expect-user-data", report.report_data, expect.user_data, v1_note)
    _expect(b, "expect.mnonce", "mnonce", "--expect-mnonce", report.mnonce, expect.mnonce, v1_note)
    _expect(b, "expect.measure", "measure", "--expect-measure", report.measure, expect.measure, v1_note)

    expected_any = expect.any or bool(policy and any(policy.get(r) for r in (
        "measurements", "expect.user_data", "expect.mnonce")))
    _findings(b, report, chain, expected_any, collateral, pek)
    _policy(b, report, policy, chain, hsk, cek, pek, expect)
    b.verdict.report = report.summary()
    b.verdict.trust = {
        "roots": roots.to_list(),
        "chain": chain,
        "collateral": ({"hsk": collateral.hsk_source or None, "cek": collateral.cek_source or None}
                       if chain and collateral else None),
    }
    return b.finish()


def _chip_binding(b: VerdictBuilder, report: Report, collateral: Collateral | None, claims: Claims) -> None:
    """Fails when any two of the chip ids named by the report, the envelope and the certificate lookup differ.
    Passes only when this verifier found the certificates filed under the report's chip id and their CEK
    signed this PEK; report and envelope alone are both the prover's claims, so agreeing is not enough."""
    # The legacy serde shape has no chip id of its own: the report was rebuilt with serial_number in it.
    copied = claims.chip_id_from_envelope
    named = [("report", report.chip_id, " (copied from the envelope's serial_number)" if copied else "")]
    if claims.serial_number is not None and not copied:
        named.append(("envelope serial_number", claims.serial_number, ""))
    filed = collateral.chip_id if collateral is not None and not collateral.from_evidence else None
    if filed is not None:
        named.append(("certificates filed under", filed, f" ({collateral.hsk_source})"))
    text = ", ".join(f"{who} {chip!r}{where}" for who, chip, where in named)
    if len({chip for _, chip, _ in named}) > 1:
        b.add("chip.binding", FAIL, f"chip ids disagree: {text}")
        return
    claims_only = ("report and envelope agree, but both are the prover's claims" if len(named) > 1 else
                   f"only the report names a chip ({text})")
    if collateral is None:
        b.add("chip.binding", SKIPPED, f"{claims_only}; no certificates were looked up by chip id (--chain not "
                                       "requested)")
    elif collateral.hsk is None or collateral.cek is None:
        b.add("chip.binding", SKIPPED, f"{claims_only}; no certificates were found for this chip id")
    elif collateral.from_evidence:
        b.add("chip.binding", SKIPPED, f"{claims_only}; the certificates came from the evidence itself, not from a "
                                       "lookup by chip id")
    elif filed is None:
        b.add("chip.binding", SKIPPED, f"{claims_only}; the certificates ({collateral.hsk_source}) were not filed "
                                       "under a chip id, so nothing independent names the chip")
    elif b.status("pek.signature") is not PASS:
        status = b.status("pek.signature")
        b.add("chip.binding", SKIPPED, f"chip ids agree ({text}), but the chain did not verify (pek.signature "
                                       f"{status.value if status else 'not run'}), so these certificates are not "
                                       "shown to belong to this report's PEK")
    else:
        b.add("chip.binding", PASS, f"chip ids agree: {text}; the CEK filed under it signed this report's PEK")


def _claim_findings(b: VerdictBuilder, report: Report, collateral: Collateral | None, claims: Claims) -> None:
    if collateral is not None and collateral.from_evidence and collateral.hsk is not None:
        b.finding("certs-from-evidence", "warning",
                  "the HSK and CEK came from the evidence itself: even when they chain to the root, which chip "
                  "they belong to rests on the prover's word (no KDS lookup by this verifier)")
    if claims.pek_from_envelope:
        chip = (" and its chip id only in serial_number (copied into the rebuilt report)"
                if claims.chip_id_from_envelope else "")
        b.finding("pek-from-envelope", "warning", f"the {claims.shape} carries the PEK only in its envelope "
                                                  f"(cert_chain.pek){chip}; the MAC over it is not available")
    elif claims.pek is not None and claims.pek != report.pek_raw:
        b.finding("envelope-pek-mismatch", "warning", "the envelope's cert_chain.pek differs from the PEK inside the "
                                                      "report; the report's own PEK was used")


def check_collateral(collateral: Collateral, roots: TrustRoots, chip_id: str = "") -> tuple[Verdict, list[str]]:
    """Run only the chain checks (root → HSK → CEK) on collateral; returns them and the failure reasons."""
    b = VerdictBuilder("collateral", None)
    _chain(b, chip_id, collateral, roots)
    verdict = b.finish("not part of a collateral check")
    return verdict, [f"{c.id}: {c.reason}" for c in verdict.failed]


def _reserved_findings(b: VerdictBuilder, certs: list[tuple[str, RootCert | CsvCert | None]]) -> None:
    """Reserved areas lie outside the signatures; non-zero bytes there are reported, not failed."""
    faults = [f"{name} {fault}" for name, cert in certs if cert is not None for fault in cert.reserved_nonzero]
    if faults:
        b.finding("nonzero-reserved", "warning", "; ".join(faults) + " (outside every signature)")


def _policy(b: VerdictBuilder, report: Report, policy: Policy | None, chain: bool, hsk: RootCert | None,
            cek: CsvCert | None, pek: CsvCert | None, expect: Expectations) -> None:
    if policy is None:
        for cid in _POLICY_CHECKS:
            b.add(cid, NA, "no policy given (--policy FILE or policy flags)")
        return
    chain_ids = _HSK_CHECKS + _CEK_CHECKS + ("pek.signature",)
    binding = b.status("chip.binding")
    # The expect.* checks ran before this: a passing one pins a V1 report's unsigned anonce.
    facts = Facts(
        report=report, chain_requested=chain,
        chain_verified=chain and all(b.status(cid) is PASS for cid in chain_ids),
        mac_status=b.status("report.mac").value,
        pek_api=(pek.api_major, pek.api_minor) if pek else None,
        hsk_version=hsk.version if hsk else None, cek_version=cek.version if cek else None,
        findings=frozenset(f.id for f in b.verdict.findings),
        overridden=frozenset(q for q, given in (("user_data", expect.user_data), ("mnonce", expect.mnonce),
                                                ("measure", expect.measure)) if given),
        expectations_passed=frozenset(q for q in ("user_data", "mnonce", "measure")
                                      if b.status(f"expect.{q}") is PASS),
        chip_binding=binding.value if binding else "not run",
    )
    evaluate(policy, facts, lambda cid, status, reason: b.add(cid, Status(status), reason))
    b.verdict.policy = policy.describe()


def _findings(b: VerdictBuilder, report: Report, chain: bool, expected_any: bool,
              collateral: Collateral | None, pek: CsvCert | None) -> None:
    if report.sealing_key_present:
        b.finding("sealing-key-present", "warning",
                  f"the 32-byte field at offset {report.layout.sealing_key_offset} is not blank: this report carries "
                  "the VM's sealing key, which has leaked to everyone holding the file (the value is never shown)")
    if report.version == 1:
        b.finding("unsigned-fields", "info", "anonce, sig_usage, sig_algo and the chip id lie outside the V1 report "
                                             "signature; decoded fields are only as good as the expectations checked "
                                             "on them")
        if not expected_any:
            b.finding("no-expectation", "warning", "no expected user data, mnonce or measure was given: a changed "
                                                   "anonce would shift every decoded field unnoticed")
    if not report.policy & 1:
        b.finding("debug-allowed", "warning", "the guest policy's NODBG bit is clear: the hypervisor may debug this "
                                              "guest and read its memory")
    implausible = policy_fields_implausible(report.policy, (pek.api_major, pek.api_minor) if pek else None)
    if implausible:
        b.finding("policy-fields-implausible", "warning", implausible)
    if chain:
        if collateral is None or collateral.hsk is None:
            how = "no certificates were found for it, so nothing binds it"
        elif collateral.from_evidence:
            how = "the certificates came from the evidence itself, so nothing independent binds it"
        elif collateral.chip_id is not None:
            how = (f"it is bound only by the chip id the certificates were filed under ({collateral.hsk_source}), "
                   "as far as that filing is right (a KDS lookup by chip id, or whoever filed them)")
        else:
            how = (f"the certificates ({collateral.hsk_source}) were not found by chip id, so nothing binds it (the "
                   "CEK names no chip)")
        b.finding("chip-id-unbound", "info", f"the chip id {report.chip_id!r} is outside every signature; {how}")

