"""SM2 verification: the spec's intermediate values, the real chain, edge cases, and gmssl as a second opinion."""

import random

import pytest

from csvverify import sm2
from csvverify.certs import parse_csv_cert, parse_root_cert
from csvverify.forge import Forge, _gmssl_sign
from csvverify.hashing import sm3
from csvverify.report import parse_report
from csvverify.sm2 import PublicKey

HRK = PublicKey(0xBE62E14D62A4F14CF3D702DB09563A75C80935E785CD1F502AF5F21D92C2F62D,
                0x3BAB123A57BB7015584F8B97164E95384A640C10B9BE884738744D68B41EB946)


def test_za_of_pinned_hrk_matches_spec():
    assert sm2.za(b"HYGON-SSD-HRK", HRK).hex() == "0c71d1aea468d459bb16059398bdfb6c10a2d194477d921ddb471009cd17fa0c"


def test_real_chain_intermediate_values(real_dir):
    hsk = parse_root_cert((real_dir / "hsk.cert").read_bytes())
    cek = parse_csv_cert((real_dir / "cek.cert").read_bytes())
    report = parse_report((real_dir / "report.cert").read_bytes())
    pek = report.pek()
    assert sm2.za(hsk.uid, hsk.key).hex() == "8badeef652321cc6f76982ee97fbfa885f5aead439c6578d50af2a78d7caab0f"
    assert sm2.za(cek.uid, cek.key).hex() == "00a33bb3680bc43ff2a7b93e145d2168e59226ee3c41c7cc4b627e415b238169"
    assert sm2.za(pek.uid, pek.key).hex() == "33a115cdbeb49c6b00d51ec0548401b345a7ebb464891d8dca6713f6e63c7ab3"
    e = sm2.digest(pek.uid, pek.key, report.signed_bytes)
    assert f"{e:064x}" == "01dce0d8f8a7aa3d5967fbd808b2666ccb11ea9bd1bf91e46132ec960cb3c54c"


def test_real_chain_signatures_verify(real_dir):
    hrk = parse_root_cert((real_dir / "hrk.cert").read_bytes())
    hsk = parse_root_cert((real_dir / "hsk.cert").read_bytes())
    cek = parse_csv_cert((real_dir / "cek.cert").read_bytes())
    report = parse_report((real_dir / "report.cert").read_bytes())
    pek = report.pek()
    assert hrk.key == HRK
    sig = hrk.signature
    sm2.check(hrk.key, hrk.uid, hrk.signed_bytes, sig.r, sig.s)
    sm2.check(hrk.key, hrk.uid, hsk.signed_bytes, hsk.signature.r, hsk.signature.s)
    s1 = cek.slots[0].signature
    sm2.check(hsk.key, hsk.uid, cek.signed_bytes, s1.r, s1.s)
    p1 = pek.slots[0].signature
    sm2.check(cek.key, cek.uid, pek.signed_bytes, p1.r, p1.s)
    sm2.check(pek.key, pek.uid, report.signed_bytes, report.signature.r, report.signature.s)
    # the default SM2 user id does not verify: the signer's own uid is required
    assert not sm2.verify(pek.key, b"1234567812345678", report.signed_bytes, report.signature.r, report.signature.s)


def _sig_parts(real_dir):
    report = parse_report((real_dir / "report.cert").read_bytes())
    pek = report.pek()
    return pek.key, pek.uid, report.signed_bytes, report.signature.r, report.signature.s


@pytest.mark.parametrize("r_delta, s_delta, reason", [
    ("zero", None, "r is outside"), (None, "zero", "s is outside"),
    ("n", None, "r is outside"), (None, "n", "s is outside"),
])
def test_rejects_r_s_out_of_range(real_dir, r_delta, s_delta, reason):
    key, uid, msg, r, s = _sig_parts(real_dir)
    value = {"zero": 0, "n": int(sm2.N), None: None}
    r = value[r_delta] if r_delta else r
    s = value[s_delta] if s_delta else s
    with pytest.raises(sm2.SignatureError, match=reason):
        sm2.check(key, uid, msg, r, s)


def test_rejects_r_plus_s_equal_n(real_dir):
    key, uid, msg, r, _ = _sig_parts(real_dir)
    with pytest.raises(sm2.SignatureError):
        sm2.check(key, uid, msg, r, int(sm2.N) - r)


def test_rejects_off_curve_and_oversized_keys(real_dir):
    key, uid, msg, r, s = _sig_parts(real_dir)
    with pytest.raises(sm2.SignatureError, match="not a point on the SM2 curve"):
        sm2.check(PublicKey(key.x, key.y ^ 1), uid, msg, r, s)
    with pytest.raises(sm2.SignatureError, match="not below the field prime"):
        sm2.check(PublicKey(key.x + int(sm2.P), key.y), uid, msg, r, s)
    with pytest.raises(sm2.SignatureError):
        sm2.check(PublicKey(0, 0), uid, msg, r, s)


def _affine(pt):
    x, y, z = (int(v) for v in pt)
    zi = pow(z, -1, int(sm2.P))
    return x * zi * zi % int(sm2.P), y * zi * zi * zi % int(sm2.P)


def _double_and_add(k, x, y):
    """k*(x, y) by plain double-and-add over the separate _double/_add formulas: a reference for the tables'
    inlined (and partly unreduced) arithmetic."""
    acc, base = sm2._INF, (sm2._num(x), sm2._num(y), sm2._num(1))
    for bit in bin(k)[2:]:
        acc = sm2._double(acc)
        if bit == "1":
            acc = sm2._add(acc, base)
    return acc


@pytest.mark.parametrize("width", [5, 6, 8])
def test_signed_windows_sum_back_to_the_scalar(width):
    table = sm2._FixedBase(sm2.GX, sm2.GY, width)
    rng = random.Random(width)
    half = 1 << (width - 1)
    edges = [0, 1, 2, half, half + 1, int(sm2.N) - 1, int(sm2.N), 2**256 - 1]
    for k in edges + [rng.getrandbits(256) for _ in range(300)]:
        digits = table.digits(k)
        assert sum(d << (width * i) for i, d in enumerate(digits)) == k
        assert all(-half <= d < half for d in digits) and len(digits) == len(table.table)
    for k in (-1, 2 ** (width * table.windows)):
        with pytest.raises(OverflowError):
            table.digits(k)


def test_scalar_multiplication_paths_agree():
    rng = random.Random(7)
    key = sm2.public_key(rng.randrange(1, int(sm2.N) - 1))
    for x, y in ((sm2.GX, sm2.GY), (key.x, key.y)):
        tables = [sm2._FixedBase(sm2._num(x), sm2._num(y), w) for w in (6, 8)]
        tables.append(sm2._OddMultiples(sm2._num(x), sm2._num(y)))
        for k in [1, 2, 3, int(sm2.N) - 1, int(sm2.N) - 2] + [rng.randrange(1, int(sm2.N)) for _ in range(40)]:
            want = _affine(_double_and_add(k, x, y))
            assert [_affine(t.mul(k)) for t in tables] == [want] * len(tables), k
    assert not sm2._FixedBase(sm2.GX, sm2.GY).mul(int(sm2.N))[2]  # n*G is the point at infinity


def test_key_table_promotion_keeps_results(real_dir):
    key, uid, msg, r, s = _sig_parts(real_dir)
    sm2.clear_caches()
    for _ in range(sm2.PROMOTE_AFTER + 3):  # crosses the switch to a fixed-base table
        sm2._RESULTS.clear()
        assert sm2.verify(key, uid, msg, r, s)
        assert not sm2.verify(key, uid, msg + b"x", r, s)
    assert isinstance(sm2._KEY_TABLES[(key.x, key.y)][1], sm2._FixedBase)


def test_results_are_remembered_exactly(real_dir):
    key, uid, msg, r, s = _sig_parts(real_dir)
    sm2.clear_caches()
    assert sm2.verify(key, uid, msg, r, s) and sm2.verify(key, uid, msg, r, s)
    assert not sm2.verify(key, uid, msg, r, s + 1)  # a different input is never answered from memory
    assert not sm2.verify(key, uid + b"x", msg, r, s)
    assert len(sm2._RESULTS) == 3


def test_differential_against_gmssl():
    """Signatures made by gmssl verify here (and altered ones do not); ours verify in gmssl."""
    from gmssl.sm2 import CryptSM2

    rng = random.Random(2026)
    for i in range(60):
        d = rng.randrange(1, int(sm2.N) - 1)
        key = sm2.public_key(d)
        uid = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        msg = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 300)))
        e = sm2.digest(uid, key, msg).to_bytes(32, "big")
        k = rng.randrange(1, int(sm2.N) - 1)
        rs = _gmssl_sign(d, key, e, k)
        if rs is None:
            continue
        r, s = rs
        assert sm2.verify(key, uid, msg, r, s), i
        assert not sm2.verify(key, uid, msg + b"\0", r, s)
        assert not sm2.verify(key, uid[:-1] + bytes([uid[-1] ^ 1]), msg, r, s)
        assert not sm2.verify(key, uid, msg, r, (s + 1) % int(sm2.N) or 1)
        # the other direction: our signature, gmssl's verification
        r2, s2 = sm2.sign(d, uid, msg, k)
        assert (r2, s2) == (r, s)
        checker = CryptSM2(private_key="", public_key="")
        checker.public_key = f"{key.x:064x}{key.y:064x}"
        assert checker.verify(f"{r2:064x}{s2:064x}", e)


def test_forge_signers_agree():
    assert Forge(signer="fast").report(2) == Forge(signer="gmssl").report(2)


def test_pure_python_backend_verifies_the_same(real_dir):
    """The arithmetic without gmpy2 (the default when it is not installed) gives the same answers."""
    import subprocess
    import sys

    code = (
        "from csvverify import sm2; from csvverify.report import parse_report;"
        f"r = parse_report(open({str(real_dir / 'report.cert')!r}, 'rb').read()); p = r.pek();"
        "print(sm2.BACKEND, sm2.verify(p.key, p.uid, r.signed_bytes, r.signature.r, r.signature.s),"
        " sm2.verify(p.key, p.uid, r.signed_bytes + b'x', r.signature.r, r.signature.s))"
    )
    env = {**__import__("os").environ, "CSVVERIFY_NO_GMPY2": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["python", "True", "False"]


@pytest.mark.parametrize("d", [1, 5])
def test_rejects_s_g_plus_t_q_at_infinity(d):
    """With Q = d*G, s*G + (r+s)*Q = (s + (r+s)*d)*G is infinity when r = -s*(1+d)/d mod n."""
    n = int(sm2.N)
    key = sm2.public_key(d)
    for s in (1, 12345, n - 2):
        r = -s * (1 + d) * pow(d, -1, n) % n
        assert 1 <= r < n and (r + s) % n
        with pytest.raises(sm2.SignatureError, match="point at infinity"):
            sm2.check(key, b"ID", b"message", r, s)
        assert not sm2.verify(key, b"ID", b"message", r, s)


# Curve parameters as printed in report-format §7.1, and SM3 from gmssl: nothing from csvverify.sm2/hashing.
_SPEC_CURVE = ("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
               "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
               "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
               "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0")


def _independent_za(uid: bytes, x_le72: bytes, y_le72: bytes) -> str:
    from gmssl import sm3

    x, y = (int.from_bytes(v, "little").to_bytes(32, "big") for v in (x_le72, y_le72))
    data = (len(uid) * 8).to_bytes(2, "big") + uid + bytes.fromhex(_SPEC_CURVE) + x + y
    return sm3.sm3_hash(list(data))


def test_za_of_each_real_key_matches_the_spec_independently(real_dir):
    """report-format §7.3 intermediate values, each computed from the certificate bytes without sm2.py."""
    spec = {"HRK": "0c71d1aea468d459bb16059398bdfb6c10a2d194477d921ddb471009cd17fa0c",
            "HSK": "8badeef652321cc6f76982ee97fbfa885f5aead439c6578d50af2a78d7caab0f",
            "CEK": "00a33bb3680bc43ff2a7b93e145d2168e59226ee3c41c7cc4b627e415b238169",
            "PEK": "33a115cdbeb49c6b00d51ec0548401b345a7ebb464891d8dca6713f6e63c7ab3"}
    pek = parse_report((real_dir / "report.cert").read_bytes()).pek_raw
    # (bytes, uid_len offset, qx offset, parser): root-style certificates (§8.1) and CSV certificates (§8.2)
    certs = {"HRK": ((real_dir / "hrk.cert").read_bytes(), 212, 68, parse_root_cert),
             "HSK": ((real_dir / "hsk.cert").read_bytes(), 212, 68, parse_root_cert),
             "CEK": ((real_dir / "cek.cert").read_bytes(), 164, 20, parse_csv_cert),
             "PEK": (pek, 164, 20, parse_csv_cert)}
    for name, (raw, uid_at, x_at, parse) in certs.items():
        uid = raw[uid_at + 2:uid_at + 2 + int.from_bytes(raw[uid_at:uid_at + 2], "little")]
        assert uid == f"HYGON-SSD-{name}".encode()
        assert _independent_za(uid, raw[x_at:x_at + 72], raw[x_at + 72:x_at + 144]) == spec[name], name
        cert = parse(raw)
        assert sm2.za(cert.uid, cert.key).hex() == spec[name], name


def test_za_with_non_default_user_ids_agrees_with_an_independent_computation():
    rng = random.Random(11)
    for length in (0, 1, 13, 16, 64, 254):
        d = rng.randrange(1, int(sm2.N) - 1)
        key = sm2.public_key(d)
        uid = bytes(rng.randrange(256) for _ in range(length))
        expected = _independent_za(uid, key.x.to_bytes(72, "little"), key.y.to_bytes(72, "little"))
        assert sm2.za(uid, key).hex() == expected, length
    # and gmssl's own ZA, which is fixed to the default user id
    from gmssl.sm2 import CryptSM2

    key = sm2.public_key(12345)
    c = CryptSM2(private_key="", public_key="")
    c.public_key = f"{key.x:064x}{key.y:064x}"
    message = b"some message"
    assert c._sm3_z(message) == sm3(sm2.za(b"1234567812345678", key) + message).hex()
