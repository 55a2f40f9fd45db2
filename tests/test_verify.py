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
