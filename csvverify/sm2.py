"""SM2 signature verification (GB/T 32918) on the recommended 256-bit curve, in pure Python.

Only public data passes through here, so plain (not constant-time) arithmetic is fine. Speed comes from:
* Jacobian coordinates with the a = -3 doubling formula and mixed Jacobian+affine additions;
* a fixed-base table for G (signed windows: s*G costs additions only, no doublings);
* a small cache of per-key tables: odd multiples for width-5 wNAF, upgraded to a fixed-base table
  once a key has been used a few times (the PEK of a chip recurs in every report of a batch); tables are
  built in affine coordinates with one shared inversion per step;
* keys that passed validation are remembered (the check is repeated for any other key);
* gmpy2 integers when gmpy2 is installed (set CSVVERIFY_NO_GMPY2=1 to measure without it).

Signing (``sign``) exists for the test forge's bulk mode and takes an explicit nonce k.
"""

import os
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from csvverify.hashing import sm3

try:
    if os.environ.get("CSVVERIFY_NO_GMPY2"):
        raise ImportError
    from gmpy2 import invert as _gmpy2_invert, mpz as _num

    BACKEND = "gmpy2"
except ImportError:  # pragma: no cover - depends on the environment
    _gmpy2_invert = None
    _num = int
    BACKEND = "python"

P = _num(0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF)
A = _num(0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC)
B = _num(0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93)
N = _num(0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123)
GX = _num(0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7)
GY = _num(0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0)

_CURVE_BYTES = b"".join(int(v).to_bytes(32, "big") for v in (A, B, GX, GY))


def _invert(v):
    """v^-1 mod p; raises (ZeroDivisionError or ValueError) when v is 0 mod p. gmpy2's is ~15x faster than pow."""
    return _gmpy2_invert(v, P) if _gmpy2_invert is not None else pow(v, -1, P)


# Jacobian points are tuples (X, Y, Z); Z == 0 is the point at infinity.
_INF = (_num(1), _num(1), _num(0))


class SignatureError(Exception):
    """A signature or key that does not verify; the message says why."""


@dataclass(frozen=True)
class PublicKey:
    x: int
    y: int


def _double(pt):
    x, y, z = pt
    if not z or not y:
        return _INF
    p = P
    delta = z * z % p
    gamma = y * y % p
    beta = x * gamma % p
    alpha = 3 * (x - delta) * (x + delta) % p
    x3 = (alpha * alpha - 8 * beta) % p
    z3 = ((y + z) ** 2 - gamma - delta) % p
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % p
    return (x3, y3, z3)


def _add(p1, p2):
    """Jacobian + Jacobian."""
    x1, y1, z1 = p1
    x2, y2, z2 = p2
    if not z1:
        return p2
    if not z2:
        return p1
    p = P
    z1z1 = z1 * z1 % p
    z2z2 = z2 * z2 % p
    u1 = x1 * z2z2 % p
    u2 = x2 * z1z1 % p
    s1 = y1 * z2 * z2z2 % p
    s2 = y2 * z1 * z1z1 % p
    h = (u2 - u1) % p
    r = (s2 - s1) % p
    if not h:
        return _double(p1) if not r else _INF
    hh = h * h % p
    hhh = h * hh % p
    v = u1 * hh % p
    x3 = (r * r - hhh - 2 * v) % p
    y3 = (r * (v - x3) - s1 * hhh) % p
    return (x3, y3, z1 * z2 * h % p)


def _inverses(values):
    """Modular inverses of many non-zero field elements for the price of one (Montgomery's trick)."""
    p = P
    prefix = []
    acc = _num(1)
    for v in values:
        prefix.append(acc)
        acc = acc * v % p
    inv = _invert(acc)  # raises if any value is zero: never a wrong table
    out = [None] * len(values)
    for i in range(len(values) - 1, -1, -1):
        out[i] = inv * prefix[i] % p
        inv = inv * values[i] % p
    return out


def _to_affine_many(points):
    """Batch-convert Jacobian points (none at infinity) to affine with one inversion."""
    p = P
    out = []
    for (x, y, _), zi in zip(points, _inverses([z for _, _, z in points])):
        zi2 = zi * zi % p
        out.append((x * zi2 % p, y * zi2 * zi % p))
    return out


def _multiples(bases, count):
    """[[B, 2B, ..., count*B] for each affine B] in affine coordinates, all rows stepped together so that each
    step costs one shared inversion. For a point of prime order n (every point on this curve but infinity)
    j*B + B never meets -B or B for 2 <= j < count << n, so no step divides by zero."""
    p = P
    xs = [b[0] for b in bases]
    ys = [b[1] for b in bases]
    rows = [[b] for b in bases]
    if count < 2:
        return rows
    # 2B by the affine doubling: lambda = (3x^2 + a) / 2y with a = -3.
    cur = []
    for (x, y), inv in zip(bases, _inverses([2 * y % p for y in ys])):
        lam = 3 * (x * x - 1) * inv % p
        x3 = (lam * lam - 2 * x) % p
        cur.append((x3, (lam * (x - x3) - y) % p))
    for row, pt in zip(rows, cur):
        row.append(pt)
    for _ in range(count - 2):
        invs = _inverses([(bx - cx) % p for bx, (cx, _) in zip(xs, cur)])
        nxt = []
        for bx, by, (cx, cy), inv in zip(xs, ys, cur, invs):
            lam = (by - cy) * inv % p
            x3 = (lam * lam - cx - bx) % p
            nxt.append((x3, (lam * (cx - x3) - cy) % p))
        for row, pt in zip(rows, nxt):
            row.append(pt)
        cur = nxt
    return rows


class _FixedBase:
    """k*Q by signed fixed windows: k = sum d_i * 2^(W*i) with |d_i| <= 2^(W-1); additions only.
    Row i of the table holds d*2^(W*i)*Q for d = 1..2^(W-1) (affine; a negative digit negates y)."""

    def __init__(self, x, y, w: int = 6):
        self.w = w
        half = 1 << (w - 1)
        self.windows = (256 + w) // w + 1  # signed recoding may carry one window further
        self._offset = sum(half << (w * i) for i in range(self.windows))  # H of digits()
        bases = []
        base = (x, y, _num(1))
        for _ in range(self.windows):
            bases.append(base)
            for _ in range(w):
                base = _double(base)
        self.table = _multiples(_to_affine_many(bases), half)

    def digits(self, k) -> list[int]:
        """The signed windows of k, lowest first, each in [-2^(W-1), 2^(W-1)): the windows of k + H less
        2^(W-1), where H has 2^(W-1) in every window, so that no carry has to be propagated. For W = 8 the
        windows are the bytes of k + H (no big-integer shifts)."""
        w, half = self.w, 1 << (self.w - 1)
        u = int(k) + self._offset
        if k < 0 or u >> (w * self.windows):
            raise OverflowError("scalar out of range for this table")
        if w == 8:
            return [b - 128 for b in u.to_bytes(self.windows, "little")]
        mask = (1 << w) - 1
        return [(u >> shift & mask) - half for shift in range(0, w * self.windows, w)]

    def mul(self, k):
        p = P
        x, y, z = _INF
        for row, d in zip(self.table, self.digits(k)):  # the mixed addition is inlined: it runs for every verify
            if not d:
                continue
            if d > 0:
                px, py = row[d - 1]
            else:
                px, py = row[-d - 1]
                py = p - py
            if not z:
                x, y, z = px, py, _num(1)
                continue
            z1z1 = z * z % p
            h = (px * z1z1 - x) % p
            r = (py * z * z1z1 - y) % p
            if not h:
                x, y, z = _double((x, y, z)) if not r else _INF
                continue
            hh = h * h % p
            hhh = h * hh  # hhh and v stay unreduced: each feeds only sums that are reduced next (~6% faster)
            v = x * hh
            x = (r * r - hhh - v - v) % p
            y = (r * (v - x) - y * hhh) % p
            z = z * h % p
        return (x, y, z)


def _wnaf(k, w=5):
    digits = []
    while k:
        if k & 1:
            d = k & ((1 << w) - 1)
            if d >= 1 << (w - 1):
                d -= 1 << w
            k -= d
        else:
            d = 0
        digits.append(d)
        k >>= 1
    return digits


class _OddMultiples:
    """k*Q by width-5 wNAF over the affine odd multiples Q, 3Q, ..., 15Q."""

    def __init__(self, x, y):
        q = (x, y, _num(1))
        q2 = _double(q)
        pts = [q]
        for _ in range(7):
            pts.append(_add(pts[-1], q2))
        self.table = _to_affine_many(pts)

    def mul(self, k):
        # The doubling and mixed addition are inlined: this loop is the hot path of a cold verify.
        p = P
        table = self.table
        x, y, z = _INF
        for d in reversed(_wnaf(int(k))):
            if z:
                delta = z * z % p
                gamma = y * y % p
                z = (y * z << 1) % p
                beta4 = x * gamma << 2  # unreduced, as hhh and v below: it feeds only sums reduced next
                alpha = 3 * (x - delta) * (x + delta) % p
                x = (alpha * alpha - (beta4 << 1)) % p
                y = (alpha * (beta4 - x) - (gamma * gamma << 3)) % p
            if d:
                px, py = table[d >> 1] if d > 0 else table[(-d) >> 1]
                if d < 0:
                    py = p - py
                if not z:
                    x, y, z = px, py, _num(1)
                    continue
                z1z1 = z * z % p
                h = (px * z1z1 - x) % p
                r = (py * z * z1z1 - y) % p
                if not h:
                    x, y, z = _double((x, y, z)) if not r else _INF
                    continue
                hh = h * h % p
                hhh = h * hh
                v = x * hh
                x = (r * r - hhh - 2 * v) % p
                y = (r * (v - x) - y * hhh) % p
                z = z * h % p
        return (x, y, z)


_G_TABLE = None
_G_USES = 0
G_WIDE_AFTER = 800  # uses after which G gets a W=8 table (it saves about its build time over that many uses)
_KEY_TABLES: "OrderedDict[tuple, list]" = OrderedDict()
KEY_CACHE_SIZE = 128
PROMOTE_AFTER = 8  # uses after which a key gets a fixed-base table (build cost ~ that many verifies)


def _g_table():
    """G's table: W=6 at first (cheap to build for a single verification), W=8 once a batch has used it often."""
    global _G_TABLE, _G_USES
    _G_USES += 1
    wide = _G_USES >= G_WIDE_AFTER
    if _G_TABLE is None or (wide and _G_TABLE.w != 8):
        _G_TABLE = _FixedBase(GX, GY, 8 if wide else 6)
    return _G_TABLE


def prepare_for_batch() -> None:
    """For a process that verifies many reports (an audit worker): G's W=8 table now rather than after
    G_WIDE_AFTER uses, and a key's fixed-base table from its second use, because in a batch a key seen twice
    recurs (a chip's PEK signs every report of that chip). Only speed changes, never a result."""
    global PROMOTE_AFTER, _G_TABLE
    PROMOTE_AFTER = 2
    if _G_TABLE is None or _G_TABLE.w != 8:
        _G_TABLE = _FixedBase(GX, GY, 8)


def _key_table(x, y):
    key = (int(x), int(y))
    entry = _KEY_TABLES.get(key)
    if entry is None:
        entry = [0, _OddMultiples(_num(x), _num(y))]
        _KEY_TABLES[key] = entry
        if len(_KEY_TABLES) > KEY_CACHE_SIZE:
            _KEY_TABLES.popitem(last=False)
    else:
        _KEY_TABLES.move_to_end(key)
    entry[0] += 1
    if entry[0] == PROMOTE_AFTER:
        entry[1] = _FixedBase(_num(x), _num(y))
    return entry[1]


def _affine_x(pt):
    x, _, z = pt
    zi = _invert(z)
    return int(x * zi * zi % P)


def on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


# Keys that passed validate_public_key, as (x, y): the same few keys are validated for every report of a batch.
_VALID_KEYS: set[tuple[int, int]] = set()
VALID_KEYS_LIMIT = 4096


def validate_public_key(key: PublicKey) -> None:
    """Raise SignatureError unless the key is a valid point (not infinity, coordinates < p, on the curve)."""
    point = (key.x, key.y)
    if point in _VALID_KEYS:
        return
    if not (0 <= key.x < P and 0 <= key.y < P):
        raise SignatureError("public key coordinate is not below the field prime")
    if not on_curve(key.x, key.y):
        raise SignatureError("public key is not a point on the SM2 curve")
    if len(_VALID_KEYS) >= VALID_KEYS_LIMIT:
        _VALID_KEYS.clear()
    _VALID_KEYS.add(point)


@lru_cache(maxsize=1024)
def za(uid: bytes, key: PublicKey) -> bytes:
    """ZA = SM3(ENTL || ID || a || b || Gx || Gy || xQ || yQ), ENTL = bit length of ID, big-endian u16."""
    if len(uid) * 8 > 0xFFFF:
        raise SignatureError(f"user id of {len(uid)} bytes is too long for SM2")
    return sm3((len(uid) * 8).to_bytes(2, "big") + uid + _CURVE_BYTES
               + key.x.to_bytes(32, "big") + key.y.to_bytes(32, "big"))


def digest(uid: bytes, key: PublicKey, message: bytes) -> int:
    return int.from_bytes(sm3(za(uid, key) + message), "big")


def check(key: PublicKey, uid: bytes, message: bytes, r: int, s: int) -> None:
    """Verify an SM2 signature; raise SignatureError with the reason when it does not verify."""
    if not 1 <= r < N:
        raise SignatureError("signature r is outside [1, n-1]")
    if not 1 <= s < N:
        raise SignatureError("signature s is outside [1, n-1]")
    validate_public_key(key)
    e = digest(uid, key, message)
    memo_key = (key, e, r, s)
    if memo_key in _RESULTS:
        problem = _RESULTS[memo_key]
    else:
        problem = _RESULTS[memo_key] = _equation_problem(key, e, r, s)
        if len(_RESULTS) > RESULT_CACHE_SIZE:
            del _RESULTS[next(iter(_RESULTS))]
    if problem:
        raise SignatureError(problem)


# The same certificate signatures recur in every report of a chip: remember verification results,
# keyed by everything the result depends on (key, e = SM3(ZA(uid, key) || message), r, s).
_RESULTS: dict[tuple, str | None] = {}
RESULT_CACHE_SIZE = 4096


def clear_caches() -> None:
    """Forget per-key tables and remembered results (benchmarks and tests measure cold work with it)."""
    _KEY_TABLES.clear()
    _RESULTS.clear()
    _VALID_KEYS.clear()
    za.cache_clear()


def _equation_problem(key: PublicKey, e: int, r: int, s: int) -> str | None:
    t = (r + s) % N
    if not t:
        return "(r + s) mod n is zero"
    x, _, z = _add(_g_table().mul(s), _key_table(key.x, key.y).mul(t))
    if not z:
        return "s*G + t*Q is the point at infinity"
    # (e + x1) mod n == r without an inversion: x1 = X/Z^2 is v or v + n for v = (r - e) mod n.
    v = (r - e) % N
    zz = z * z % P
    if (x - v * zz) % P and not (v + N < P and not (x - (v + N) * zz) % P):
        return "signature does not match the message and key"
    return None


def verify(key: PublicKey, uid: bytes, message: bytes, r: int, s: int) -> bool:
    try:
        check(key, uid, message, r, s)
    except SignatureError:
        return False
    return True


# -- key generation and signing, for the test forge only ------------------------------------------


def public_key(d: int) -> PublicKey:
    if not 1 <= d < N - 1:
        raise ValueError("private key must lie in [1, n-2]")
    pt = _g_table().mul(d)
    x = _affine_x(pt)
    zi = _invert(pt[2])
    y = int(pt[1] * zi * zi * zi % P)
    return PublicKey(x, y)


def sign(d: int, uid: bytes, message: bytes, k: int) -> tuple[int, int]:
    """Sign with private key d and nonce k (the caller supplies k; the forge derives it deterministically)."""
    key = public_key(d)
    e = digest(uid, key, message)
    r = (e + _affine_x(_g_table().mul(k))) % N
    if r == 0 or r + k == N:
        raise ValueError("unlucky nonce; choose another k")
    s = pow(1 + d, -1, int(N)) * (k - r * d) % N
    if s == 0:
        raise ValueError("unlucky nonce; choose another k")
    return int(r), int(s)
