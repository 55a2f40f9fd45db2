"""The speed-ups remember results; these tests show a remembered result is never given for different inputs,
so no cache lets a check pass that would fail without it."""

import random

import pytest

from csvverify import sm2, verify as verify_module
from csvverify.report import parse_report
from csvverify.sm2 import PublicKey
from csvverify.trust import TrustRoots
from csvverify.verdict import Check, Status, VerdictBuilder
from csvverify.verify import Collateral, verify


def _verify(raw, collateral=None, roots=TrustRoots(), chain=True, name="t"):
    return verify(parse_report(raw), input_name=name, input_sha256=None, roots=roots, chain=chain,
                  collateral=collateral)


def _statuses(verdict):
    return {c.id: c.status for c in verdict.checks}


def _collateral(forge, chip="CACHECHIP1", source="hsk_cek.cert"):
    blob = forge.hsk_cek(chip)
    return Collateral(blob[:832], blob[832:], source, source, chip_id=chip)


# -- sm2 -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [2, 3, 5, 6, 7, 8])
def test_fixed_base_tables_of_every_width_agree_with_the_generic_path(width):
    rng = random.Random(width)
    key = sm2.public_key(rng.randrange(1, int(sm2.N) - 1))
    fixed = sm2._FixedBase(sm2._num(key.x), sm2._num(key.y), width)
    odd = sm2._OddMultiples(sm2._num(key.x), sm2._num(key.y))
    n = int(sm2.N)
    for k in [1, 2, 3, (1 << width) - 1, 1 << width, n - 1, n - 2, (1 << 255) + 1]:
        assert sm2._affine_x(fixed.mul(k)) == sm2._affine_x(odd.mul(k))
    for _ in range(10):
        k = rng.randrange(1, n)
        assert sm2._affine_x(fixed.mul(k)) == sm2._affine_x(odd.mul(k))
    assert not fixed.mul(n)[2]  # n*Q is the point at infinity


def test_table_rows_are_the_multiples_of_their_base():
    g = (sm2.GX, sm2.GY)
    rows = sm2._multiples([g, sm2._to_affine_many([sm2._double((sm2.GX, sm2.GY, sm2._num(1)))])[0]], 9)
    for row, base in zip(rows, (1, 2)):
        for j, (x, y) in enumerate(row, 1):
            expected = sm2.public_key(j * base)
            assert (int(x), int(y)) == (expected.x, expected.y)


def test_a_key_off_the_curve_is_rejected_even_after_valid_keys_were_remembered():
    key = sm2.public_key(7)
    sm2.clear_caches()
    sm2.validate_public_key(key)
    sm2.validate_public_key(key)  # answered from memory
    with pytest.raises(sm2.SignatureError, match="not a point on the SM2 curve"):
        sm2.validate_public_key(PublicKey(key.x, key.y ^ 1))
    with pytest.raises(sm2.SignatureError, match="not below the field prime"):
        sm2.validate_public_key(PublicKey(key.x + int(sm2.P), key.y))
    assert (key.x, key.y ^ 1) not in sm2._VALID_KEYS


def test_remembered_keys_are_bounded(monkeypatch):
    monkeypatch.setattr(sm2, "VALID_KEYS_LIMIT", 3)
    sm2.clear_caches()
    for d in range(1, 10):
        sm2.validate_public_key(sm2.public_key(d))
    assert len(sm2._VALID_KEYS) <= 3


# -- verdict checks ----------------------------------------------------------------------------------

def test_a_status_must_be_a_status_member():
    with pytest.raises(TypeError, match="is not a Status"):
        VerdictBuilder("b", None).add("format", "pass", "same reason")  # a plain string would never count as fail


def test_checks_of_equal_content_are_shared_and_different_ones_are_not():
    one, two = VerdictBuilder("a", None), VerdictBuilder("b", None)
    one.add("report.mac", Status.PASS, "matches")
    two.add("report.mac", Status.FAIL, "matches")
    assert one.status("report.mac") is Status.PASS and two.status("report.mac") is Status.FAIL
    three = VerdictBuilder("c", None)
    three.add("report.mac", Status.PASS, "matches")
    assert three._checks["report.mac"] is one._checks["report.mac"]
    with pytest.raises(ValueError, match="recorded twice"):
        three.add_check(Check("report.mac", Status.PASS, "matches"))
    with pytest.raises(KeyError):
        three.add_check(Check("no.such.check", Status.PASS, "x"))


# -- remembered chain and PEK checks ---------------------------------------------------------------

def test_chain_checks_follow_the_trust_roots_given_not_those_remembered(forge, forge_roots):
    raw = forge.report(1, chip_id="CACHECHIP1")
    coll = _collateral(forge)
    for roots, expected in ((TrustRoots(), Status.FAIL), (forge_roots, Status.PASS), (TrustRoots(), Status.FAIL)):
        st = _statuses(_verify(raw, coll, roots))
        assert st["root.pinned"] is expected and st["hsk.signature"] is expected


def test_chain_checks_follow_the_collateral_bytes_not_those_remembered(forge, forge_roots):
    raw = forge.report(1, chip_id="CACHECHIP1")
    good = _collateral(forge)
    damaged = bytearray(good.cek)
    damaged[1100] ^= 1  # inside the CEK's HSK signature
    bad = Collateral(good.hsk, bytes(damaged), good.hsk_source, good.cek_source, chip_id=good.chip_id)
    for coll, expected in ((good, Status.PASS), (bad, Status.FAIL), (good, Status.PASS)):
        st = _statuses(_verify(raw, coll, forge_roots))
        assert st["cek.signature"] is expected
        assert st["report.signature"] is Status.PASS


def test_chain_reasons_name_this_verdicts_sources_and_chip(forge, forge_roots):
    raw = forge.report(1, chip_id="CACHECHIP1")
    one = _verify(raw, _collateral(forge, source="first.cert"), forge_roots)
    two = _verify(raw, _collateral(forge, source="second.cert"), forge_roots)
    assert "first.cert" in one.check("collateral").reason and "second.cert" in two.check("collateral").reason
    for chip in ("CACHECHIPA", "CACHECHIPB"):
        missing = _verify(forge.report(1, chip_id=chip), Collateral(looked_in=("somewhere",)), forge_roots)
        assert chip in missing.check("collateral").reason and chip in missing.hint


def test_remembered_findings_and_hint_are_added_to_each_verdict_once(forge, forge_roots):
    raw = forge.report(1, chip_id="CACHECHIP1")
    extra = [f for f in _verify(raw, _collateral(forge), forge_roots).findings if f.id == "extra-root"]
    again = _verify(raw, _collateral(forge), forge_roots)
    assert len(extra) == 1 and [f.id for f in again.findings].count("extra-root") == 1
    first = _verify(raw, Collateral(looked_in=("x",)), forge_roots)
    second = _verify(raw, Collateral(looked_in=("x",)), forge_roots)
    assert first.hint == second.hint and first.hint is not None
    assert _verify(raw, _collateral(forge), forge_roots).hint is None


def test_pek_checks_follow_the_cek_and_the_chain_option(forge, forge_roots):
    raw = forge.report(1, chip_id="CACHECHIP1")
    other = _collateral(forge, chip="CACHECHIP2")  # another chip's CEK did not sign this PEK
    assert _statuses(_verify(raw, _collateral(forge), forge_roots))["pek.signature"] is Status.PASS
    assert _statuses(_verify(raw, other, forge_roots))["pek.signature"] is Status.FAIL
    assert _statuses(_verify(raw, None, forge_roots, chain=False))["pek.signature"] is Status.SKIPPED
    assert _statuses(_verify(raw, _collateral(forge), forge_roots))["pek.signature"] is Status.PASS


def test_pek_checks_follow_the_pek_bytes(forge, forge_roots):
    good = forge.report(1, chip_id="CACHECHIP1")
    pek = bytearray(forge.pek_cert("CACHECHIP1"))
    pek[30] ^= 1  # the PEK's key: its CEK signature no longer verifies
    edited = forge.report(1, chip_id="CACHECHIP1", pek=bytes(pek))
    for raw, expected in ((good, Status.PASS), (edited, Status.FAIL), (good, Status.PASS)):
        assert _statuses(_verify(raw, _collateral(forge), forge_roots))["pek.signature"] is expected


def test_remembered_steps_are_bounded(forge, forge_roots, monkeypatch):
    monkeypatch.setattr(verify_module, "REMEMBER_LIMIT", 4)
    for i in range(6):
        _verify(forge.report(1, chip_id=f"CACHECHIP{i}"), _collateral(forge, chip=f"CACHECHIP{i}"), forge_roots)
    assert len(verify_module._REMEMBERED) <= 4


def test_g_gets_a_wider_table_after_many_uses_and_results_stay_the_same(monkeypatch):
    monkeypatch.setattr(sm2, "G_WIDE_AFTER", 5)
    monkeypatch.setattr(sm2, "_G_TABLE", None)
    monkeypatch.setattr(sm2, "_G_USES", 0)
    rng = random.Random(11)
    scalars = [rng.randrange(1, int(sm2.N)) for _ in range(8)] + [int(sm2.N) - 1, 1, 128, 129, 255, 256]
    odd = sm2._OddMultiples(sm2.GX, sm2.GY)
    widths = []
    for k in scalars:
        table = sm2._g_table()
        widths.append(table.w)
        assert sm2._affine_x(table.mul(k)) == sm2._affine_x(odd.mul(k))
    assert widths[:4] == [6] * 4 and set(widths[4:]) == {8}
    assert not sm2._g_table().mul(int(sm2.N))[2]
    with pytest.raises(OverflowError):  # a scalar wider than the table is refused, never reduced silently
        sm2._g_table().mul(1 << (8 * sm2._g_table().windows))


def test_prepare_for_batch_changes_speed_only(monkeypatch):
    for name in ("PROMOTE_AFTER", "_G_TABLE", "_G_USES"):
        monkeypatch.setattr(sm2, name, getattr(sm2, name))
    rng = random.Random(5)
    d = rng.randrange(1, int(sm2.N) - 1)
    key = sm2.public_key(d)
    signed = [(msg, *sm2.sign(d, b"uid", msg, rng.randrange(1, int(sm2.N) - 1))) for msg in (b"a", b"b", b"c")]
    sm2.clear_caches()
    sm2.prepare_for_batch()
    assert sm2._g_table().w == 8 and sm2.PROMOTE_AFTER == 2
    for msg, r, s in signed:
        assert sm2.verify(key, b"uid", msg, r, s)
        assert not sm2.verify(key, b"uid", msg + b"!", r, s)
    assert isinstance(sm2._KEY_TABLES[(key.x, key.y)][1], sm2._FixedBase)
