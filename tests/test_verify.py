"""The verdict model on the real vector and on forge reports: every check, tampering, the known attacks."""

import random

import pytest

from csvverify.hashing import hmac_sm3
from csvverify.report import parse_report
from csvverify.trust import TrustRoots
from csvverify.verdict import CHECKS, ExitClass, Status
from csvverify.verify import Collateral, Expectations, verify

CRYPTO = ["root.pinned", "hsk.usage", "hsk.signature", "cek.usage", "cek.issuer", "cek.signature", "pek.usage",
          "pek.signature", "report.signature_fields", "report.signature"]


def _real(real_dir):
    hc = (real_dir / "hsk_cek.cert").read_bytes()
    return (real_dir / "report.cert").read_bytes(), Collateral(hc[:832], hc[832:], "hsk_cek.cert", "hsk_cek.cert")


def _verify(raw, collateral=None, roots=TrustRoots(), chain=True, expect=Expectations(), version=None):
    return verify(parse_report(raw, version=version), input_name="t", input_sha256=None, roots=roots, chain=chain,
                  collateral=collateral, expect=expect)


def statuses(verdict):
    return {c.id: c.status for c in verdict.checks}


def test_real_vector_passes_every_check(real_dir):
    raw, coll = _real(real_dir)
    v = _verify(raw, coll, expect=Expectations(user_data=(b"user data".ljust(64, b"\0"),)))
    st = statuses(v)
    assert [c.id for c in v.checks] == list(CHECKS)
    for cid in CRYPTO + ["collateral", "report.mac", "expect.user_data", "format"]:
        assert st[cid] is Status.PASS, (cid, v.check(cid).reason)
    assert st["pek.oca"] is Status.SKIPPED and "OCA" in v.check("pek.oca").reason
    assert v.outcome == "pass" and v.exit_class is ExitClass.OK
    assert v.report["user_data"].startswith(b"user data".hex()) and v.report["chip_id"] == "NZA9T14052605"
    finding_ids = {f.id for f in v.findings}
    assert "sealing-key-present" in finding_ids and "chip-id-unbound" in finding_ids
    assert "not-a-report" not in finding_ids and "nonzero-reserved" not in finding_ids
    assert v.report["sealing_key"] == "present"
    assert (real_dir / "report.cert").read_bytes()[2484:2516].hex() not in str(v.to_dict())  # never shown


def _expected_failures(pos):
    """The check that must name a single-byte change at this offset of a V1 report."""
    if pos < 180:
        return {"report.signature"}
    if pos < 188:
        return {"report.signature_fields"}
    if pos < 192:  # anonce: shifts the decoded PEK and the MAC key
        return {"pek.usage", "pek.signature", "report.mac"}
    if pos < 336:
        return {"report.signature"}
    return {"report.mac"}


def _check_flip(raw, coll, pos):
    bad = bytearray(raw)
    bad[pos] ^= 0x5A
    v = _verify(bytes(bad), coll)
    failed = {c.id for c in v.failed}
    want = _expected_failures(pos)
    assert failed & want, (pos, failed)
    assert v.exit_class is ExitClass.SIGNATURE, pos
    if 336 <= pos < 336 + 1044:
        assert "pek.signature" in failed or "pek.usage" in failed, pos


def test_single_byte_flips_sampled(real_dir):
    raw, coll = _real(real_dir)
    rng = random.Random(1)
    positions = sorted(set(range(176, 200)) | set(rng.sample(range(2548), 150)) | {0, 2547, 2484, 2516})
    for pos in positions:
        _check_flip(raw, coll, pos)


@pytest.mark.slow
def test_single_byte_flips_everywhere(real_dir):
    raw, coll = _real(real_dir)
    for pos in range(2548):
        _check_flip(raw, coll, pos)


@pytest.mark.parametrize("which, span, check", [
    ("hsk", range(0, 720), "hsk.signature"),
    ("cek", range(0, 1044), "cek.signature"),
    ("cek", range(1052, 1196), "cek.signature"),
])
def test_collateral_flips_fail(real_dir, which, span, check):
    raw, coll = _real(real_dir)
    rng = random.Random(which + check)
    for pos in rng.sample(list(span), 25):
        hsk, cek = bytearray(coll.hsk), bytearray(coll.cek)
        (hsk if which == "hsk" else cek)[pos] ^= 0x01
        v = _verify(raw, Collateral(bytes(hsk), bytes(cek), "x", "x"))
        failed = {c.id for c in v.failed}
        assert failed, (which, pos)
        assert v.exit_class is ExitClass.SIGNATURE
        if which == "hsk" and 20 <= pos < 36:
            assert "root.pinned" in failed
        elif which == "cek" and 420 <= pos < 436:
            assert {"cek.issuer", "cek.signature"} <= failed
        elif not (which == "hsk" and 36 <= pos < 40) and not 8 <= pos < 20:
            assert check in failed, (which, pos, failed)


def test_anonce_substitution_passes_crypto_but_fails_expectations(real_dir):
    """report-format §13.1: a new anonce plus re-encoded PEK/SN and a recomputed MAC passes all cryptography."""
    raw, coll = _real(real_dir)
    old = int.from_bytes(raw[188:192], "little")
    new = old ^ 1
    delta = (old ^ new).to_bytes(4, "little")
    forged = bytearray(raw)
    forged[188:192] = new.to_bytes(4, "little")
    for i in list(range(180, 188)) + list(range(336, 2484)):  # unsigned: re-encode sig words, PEK and SN
        forged[i] ^= delta[i % 4]
    mnonce = bytes(b ^ new.to_bytes(4, "little")[i % 4] for i, b in enumerate(forged[128:144]))
    forged[2516:2548] = hmac_sm3(mnonce, bytes(forged[336:2516]))
    v = _verify(bytes(forged), coll, expect=Expectations(user_data=(b"user data".ljust(64, b"\0"),)))
    st = statuses(v)
    assert all(st[c] is Status.PASS for c in CRYPTO + ["report.mac"])
    assert v.report["policy"] == 0x40000000  # NODBG "cleared" by the unsigned anonce
    assert st["expect.user_data"] is Status.FAIL and v.exit_class is ExitClass.EXPECTATION


def test_chip_id_swap_with_recomputed_mac_is_unbound(real_dir):
    """report-format §13.2: the chip id is outside every signature."""
    raw, coll = _real(real_dir)
    anonce = raw[188:192]
    forged = bytearray(raw)
    new_sn = b"OTHERCHIP00001".ljust(64, b"\0")
    forged[2420:2484] = bytes(b ^ anonce[(2420 + i) % 4] for i, b in enumerate(new_sn))
    mnonce = parse_report(raw).mnonce
    forged[2516:2548] = hmac_sm3(mnonce, bytes(forged[336:2516]))
    v = _verify(bytes(forged), coll)
    assert v.outcome == "pass" and v.report["chip_id"] == "OTHERCHIP00001"
    assert any(f.id == "chip-id-unbound" for f in v.findings)


def test_forge_root_fails_unless_trusted_explicitly(forge, forge_roots):
    raw = forge.report(1)
    coll = Collateral(forge.hsk_cert, forge.cek_cert(), "forge", "forge")
    v = _verify(raw, coll)
    assert v.check("root.pinned").status is Status.FAIL and "never trusted" in v.check("root.pinned").reason
    assert v.exit_class is ExitClass.SIGNATURE
    v = _verify(raw, coll, roots=forge_roots)
    assert v.outcome == "pass"
    assert "--trust-root" in v.check("root.pinned").reason
    assert any(f.id == "extra-root" for f in v.findings)
    assert [r["kind"] for r in v.trust["roots"]] == ["pinned", "extra"]


def test_forge_versions_and_blanked_key(forge, forge_roots):
    coll = Collateral(forge.hsk_cert, forge.cek_cert(), "forge", "forge")
    for version in (1, 2, 3):
        v = _verify(forge.report(version, sealing_key=bytes(32)), coll, roots=forge_roots)
        assert v.outcome == "pass", [c.reason for c in v.failed]
        assert v.check("report.mac").status is Status.SKIPPED and "blanked" in v.check("report.mac").reason
        assert not any(f.id == "sealing-key-present" for f in v.findings)
        v = _verify(forge.report(version), coll, roots=forge_roots)
        assert v.check("report.mac").status is Status.PASS
        assert any(f.id == "sealing-key-present" for f in v.findings)


def test_v2_tamper_in_signed_range_and_signer_block(forge, forge_roots):
    coll = Collateral(forge.hsk_cert, forge.cek_cert(), "forge", "forge")
    raw = forge.report(2)
    for pos, check in [(5, "report.signature"), (700, "report.signature"), (1023, "report.signature"),
                       (1100, "report.signature"), (3300, "report.mac"), (3370, "report.mac"), (1200, "report.mac")]:
        bad = bytearray(raw)
        bad[pos] ^= 1
        v = _verify(bytes(bad), coll, roots=forge_roots, version=2)
        assert check in {c.id for c in v.failed}, (pos, [c.id for c in v.failed])


def test_other_chips_cek_does_not_sign_this_pek(forge, forge_roots):
    coll = Collateral(forge.hsk_cert, forge.cek_cert("ANOTHERCHIP001"), "forge", "forge")
    v = _verify(forge.report(1), coll, roots=forge_roots)
    assert {c.id for c in v.failed} == {"pek.signature"}


def test_zero_signature_and_off_curve_pek(forge, forge_roots):
    coll = Collateral(forge.hsk_cert, forge.cek_cert(), "forge", "forge")
    raw = bytearray(forge.report(2))
    raw[1024:1168] = bytes(144)
    v = _verify(bytes(raw), coll, roots=forge_roots, version=2)
    assert "r is outside [1, n-1]" in v.check("report.signature").reason
    raw = bytearray(forge.report(2))
    raw[1168 + 20] ^= 1  # PEK qx
    v = _verify(bytes(raw), coll, roots=forge_roots, version=2)
    assert "not a point on the SM2 curve" in v.check("pek.usage").reason
    assert v.check("report.signature").status is Status.FAIL and v.exit_class is ExitClass.SIGNATURE


def test_signature_padding_is_rejected(forge, forge_roots):
    raw = bytearray(forge.report(1))
    raw[192 + 40] = 1  # inside r's 40 padding bytes
    v = _verify(bytes(raw), chain=False)
    assert "padding" in v.check("report.signature").reason and v.exit_class is ExitClass.SIGNATURE


def test_without_chain_pek_is_unproven(forge):
    v = _verify(forge.report(1), chain=False)
    st = statuses(v)
    assert v.outcome == "pass"
    assert st["pek.signature"] is Status.SKIPPED and "not proven" in v.check("pek.signature").reason
    assert all(st[c] is Status.SKIPPED for c in ("collateral", "root.pinned", "cek.signature"))
    assert any(f.id == "pek-unproven" for f in v.findings)


def test_missing_collateral_names_chip_and_kds(forge):
    v = _verify(forge.report(1), Collateral(looked_in=("certs/FORGE0CHIP0001/hsk_cek.cert",)))
    assert v.outcome == "incomplete" and v.exit_class is ExitClass.COLLATERAL
    assert "FORGE0CHIP0001" in v.check("collateral").reason
    assert "https://cert.hygon.cn/hsk_cek?snumber=FORGE0CHIP0001" in v.hint


def test_expectations_any_of(forge):
    raw = forge.report(1, user_data=b"nonce-123", mnonce=b"\x11" * 16, measure=b"\x22" * 32)
    ok = Expectations(user_data=(b"x".ljust(64, b"\0"), b"nonce-123".ljust(64, b"\0")), mnonce=(b"\x11" * 16,),
                      measure=(b"\x00" * 32, b"\x22" * 32))
    v = _verify(raw, chain=False, expect=ok)
    assert all(v.check(c).status is Status.PASS for c in ("expect.user_data", "expect.mnonce", "expect.measure"))
    assert "#2 of 2" in v.check("expect.measure").reason
    bad = Expectations(measure=(b"\x00" * 32,))
    v = _verify(raw, chain=False, expect=bad)
    assert v.check("expect.measure").status is Status.FAIL and v.exit_class is ExitClass.EXPECTATION
    assert v.outcome == "fail"


def test_signer_block_already_cleared(forge, forge_roots):
    """The CoCo evidence shape: PEK and SN de-obfuscated in place, sealing key zeroed; the signature still holds."""
    raw = bytearray(forge.report(1, sealing_key=bytes(32)))
    anonce = raw[188:192]
    for i in range(336, 2484):
        raw[i] ^= anonce[i % 4]
    coll = Collateral(forge.hsk_cert, forge.cek_cert(), "forge", "forge")
    v = _verify(bytes(raw), coll, roots=forge_roots)
    assert v.outcome == "pass", [c.reason for c in v.failed]
    assert any(f.id == "signer-block-cleared" for f in v.findings) and v.report["chip_id"] == "FORGE0CHIP0001"


def _forge_coll(forge, hsk=None, cek=None):
    return Collateral(forge.hsk_cert if hsk is None else hsk, forge.cek_cert() if cek is None else cek, "forge", "forge")


@pytest.mark.parametrize("hsk, cek", [(None, b"short"), (b"short", None), (b"short", b"short")])
def test_partial_or_broken_collateral_records_each_check_once(forge, forge_roots, hsk, cek):
    v = _verify(forge.report(1), Collateral(hsk=hsk, cek=cek, hsk_source="h", cek_source="c"), roots=forge_roots)
    assert [c.id for c in v.checks] == list(CHECKS)
    st = statuses(v)
    for name, blob, ids in (("HSK", hsk, ("root.pinned", "hsk.usage", "hsk.signature")),
                            ("CEK", cek, ("cek.usage", "cek.issuer", "cek.signature"))):
        for cid in ids:
            if blob is None:
                assert st[cid] is Status.SKIPPED and f"no {name} certificate" in v.check(cid).reason
            else:
                assert st[cid] is Status.FAIL and f"{name} certificate unusable" in v.check(cid).reason
    assert st["pek.signature"] is Status.SKIPPED and v.exit_class is ExitClass.SIGNATURE
    if None in (hsk, cek):
        assert st["collateral"] is Status.FAIL and v.hint


def test_cek_without_hsk_still_checks_what_it_can(forge, forge_roots):
    v = _verify(forge.report(1), Collateral(cek=forge.cek_cert(), cek_source="c"), roots=forge_roots)
    st = statuses(v)
    assert st["collateral"] is Status.FAIL and v.exit_class is ExitClass.COLLATERAL
    assert st["cek.usage"] is Status.PASS and st["pek.signature"] is Status.PASS
    assert st["cek.signature"] is Status.SKIPPED and "HSK certificate missing" in v.check("cek.signature").reason


def _with_curve(cert: bytes, curve_id: int, offset: int) -> bytes:
    return cert[:offset] + curve_id.to_bytes(4, "little") + cert[offset + 4:]


def test_pek_with_unknown_curve_fails_the_report_signature(forge, forge_roots):
    """A PEK naming curve 1, re-signed by the CEK: the CEK's signature holds, but nothing signed with it may."""
    pek = forge.resign(_with_curve(forge.pek_cert(), 1, 16), forge.chip_key("cek"))
    v = _verify(forge.report(1, pek=pek), _forge_coll(forge), roots=forge_roots)
    st = statuses(v)
    assert st["pek.signature"] is Status.PASS
    assert st["pek.usage"] is Status.FAIL and "curve_id 1 is not 3" in v.check("pek.usage").reason
    assert st["report.signature"] is Status.FAIL and "unknown curve" in v.check("report.signature").reason
    assert v.exit_class is ExitClass.SIGNATURE


def test_cek_and_hsk_with_unknown_curve_fail_the_signatures_they_make(forge, forge_roots):
    cek = forge.resign(_with_curve(forge.cek_cert(), 1, 16), forge.hsk_key)
    v = _verify(forge.report(1), _forge_coll(forge, cek=cek), roots=forge_roots)
    assert statuses(v)["cek.signature"] is Status.PASS
    assert "unknown curve" in v.check("pek.signature").reason and statuses(v)["pek.signature"] is Status.FAIL
    hsk = forge.resign(_with_curve(forge.hsk_cert, 2, 64), forge.root_key)
    v = _verify(forge.report(1), _forge_coll(forge, hsk=hsk), roots=forge_roots)
    assert statuses(v)["hsk.signature"] is Status.PASS and statuses(v)["hsk.usage"] is Status.FAIL
    assert "unknown curve" in v.check("cek.signature").reason and statuses(v)["cek.signature"] is Status.FAIL


@pytest.mark.parametrize("which, offset, name", [
    ("hsk", 68 + 40, "qx padding at [100,140)"), ("hsk", 140 + 71, "qy padding at [172,212)"),
    ("cek", 20 + 32, "qx padding at [52,92)"), ("cek", 92 + 50, "qy padding at [124,164)"),
    ("pek", 20 + 60, "qx padding at [52,92)"), ("pek", 92 + 32, "qy padding at [124,164)"),
])
def test_key_coordinate_padding_is_rejected(forge, forge_roots, which, offset, name):
    """Non-zero padding in a 72-byte key field fails the key's usage check and every signature made with it,
    even when the certificate was signed again over the changed bytes."""
    certs = {"hsk": forge.hsk_cert, "cek": forge.cek_cert(), "pek": forge.pek_cert()}
    bad = bytearray(certs[which])
    bad[offset] ^= 0x01
    signer = {"hsk": forge.root_key, "cek": forge.hsk_key, "pek": forge.chip_key("cek")}[which]
    certs[which] = forge.resign(bytes(bad), signer)
    v = _verify(forge.report(2, pek=certs["pek"]), _forge_coll(forge, certs["hsk"], certs["cek"]), roots=forge_roots,
                version=2)
    usage, signs = {"hsk": ("hsk.usage", "cek.signature"), "cek": ("cek.usage", "pek.signature"),
                    "pek": ("pek.usage", "report.signature")}[which]
    assert v.check(usage).status is Status.FAIL and name in v.check(usage).reason
    assert v.check(signs).status is Status.FAIL and "not below the field prime" in v.check(signs).reason
    signed_by = {"hsk": "hsk.signature", "cek": "cek.signature", "pek": "pek.signature"}[which]
    assert v.check(signed_by).status is Status.PASS  # re-signed: only the padding is wrong
    assert v.exit_class is ExitClass.SIGNATURE


@pytest.mark.parametrize("data", [bytes(2548), bytes(3380), random.Random(3).randbytes(2548),
                                  random.Random(4).randbytes(3380)])
def test_garbage_of_a_report_size_is_named_as_such(data):
    v = _verify(data, chain=False)
    finding = next(f for f in v.findings if f.id == "not-a-report")
    assert finding.severity == "warning" and finding.message.startswith("does not look like a CSV report: ")
    assert "by its size" in finding.message and v.exit_class is ExitClass.SIGNATURE


def test_genuine_reports_are_not_flagged_as_garbage(forge):
    cleared = bytearray(forge.report(1, sealing_key=bytes(32)))
    for i in range(336, 2484):  # the CoCo shape: PEK and chip id de-obfuscated by the collector
        cleared[i] ^= cleared[188 + i % 4]
    for raw in (forge.report(1), forge.report(2), forge.report(3), forge.report(1, page=True), bytes(cleared)):
        assert not any(f.id == "not-a-report" for f in _verify(raw, chain=False).findings)


def test_pek_usage_flip_fails_pek_usage_and_is_flagged(real_dir):
    raw, coll = _real(real_dir)
    bad = bytearray(raw)
    bad[344] ^= 0x01  # the PEK's pubkey_usage word (obfuscated in place)
    v = _verify(bytes(bad), coll)
    assert v.check("pek.usage").status is Status.FAIL and v.exit_class is ExitClass.SIGNATURE
    assert any(f.id == "not-a-report" for f in v.findings)


def test_exit_class_ranking_matches_the_documented_order():
    """README and docs: the worst class wins in the order 3, 5, 6, 1, 4, 0."""
    from csvverify.verdict import worst

    order = [ExitClass.SIGNATURE, ExitClass.EXPECTATION, ExitClass.POLICY, ExitClass.INPUT, ExitClass.COLLATERAL,
             ExitClass.OK]
    for i, better in enumerate(order):
        for other in order[i + 1:]:
            assert worst([other, better]) is better and worst([better, other]) is better, (better, other)
    assert worst([ExitClass.COLLATERAL, ExitClass.INPUT]) is ExitClass.INPUT
    assert worst([ExitClass.POLICY, ExitClass.EXPECTATION]) is ExitClass.EXPECTATION
    assert worst([]) is ExitClass.OK


def test_expectation_mismatch_shows_full_values_and_the_first_difference(forge):
    raw = forge.report(1, measure=bytes(range(32)))
    late = bytes(range(31)) + b"\xff"
    v = _verify(raw, chain=False, expect=Expectations(measure=(late,)))
    reason = v.check("expect.measure").reason
    assert bytes(range(32)).hex() in reason and late.hex() in reason and "byte 31" in reason
    v = _verify(raw, chain=False, expect=Expectations(measure=(late, b"\xaa" * 32), user_data=(b"x" * 64,)))
    reason = v.check("expect.measure").reason
    assert "#1 " + late.hex() + " (differs from byte 31)" in reason and "#2 " + "aa" * 32 + " (differs from byte 0)" in reason
    assert ("x" * 64).encode().hex() in v.check("expect.user_data").reason


def test_control_characters_in_the_unsigned_chip_id_are_escaped(forge):
    """The chip id is outside every signature: a blanked sealing key leaves nothing to catch an edit of it."""
    chip = "NZA9T14052605\x1b[1A\r\x1b[2KOK: other.cert\x7f\x9b"
    v = _verify(forge.report(1, chip_id=chip, sealing_key=bytes(32)), chain=False)
    assert v.outcome == "pass"
    assert v.report["chip_id"] == "NZA9T14052605\\x1b[1A\\x0d\\x1b[2KOK: other.cert\\x7f\\xc2\\x9b"
    assert all(0x20 <= ord(c) <= 0x7E for c in v.report["chip_id"])


def test_unused_cek_slot_and_unsigned_tails_are_findings(forge, forge_roots):
    """report-format §10.3 and §10.6: every byte of the HSK's [720,832) and the CEK's [1196,2084) lies outside
    every signature; a change there must still show as a warning finding (the verdict itself passes)."""
    raw = forge.report(1)
    for which, span in (("hsk", range(720, 832)), ("cek", range(1196, 2084))):
        for pos in span:
            certs = {"hsk": bytearray(forge.hsk_cert), "cek": bytearray(forge.cek_cert())}
            certs[which][pos] ^= 0x01
            v = _verify(raw, _forge_coll(forge, bytes(certs["hsk"]), bytes(certs["cek"])), roots=forge_roots)
            assert v.outcome == "pass", (which, pos, [c.reason for c in v.failed])
            warned = [f for f in v.findings if f.id in ("nonzero-reserved", "cek-unexpected-slot")]
            assert warned and warned[0].severity == "warning", (which, pos)
    both_hsk = bytearray(forge.cek_cert())
    both_hsk[1564:1568] = (0x13).to_bytes(4, "little")
    v = _verify(raw, _forge_coll(forge, cek=bytes(both_hsk)), roots=forge_roots)
    assert any(f.id == "cek-unexpected-slot" and "both CEK slots" in f.message for f in v.findings)
