"""SM2 verification speed, against gmssl measured in the same run.

    python tests/bench/bench_sm2.py [--quick]  # both backends: pure Python and gmpy2 (if installed)

Prints medians for (a) a key never seen before (no cached table: the worst case, one-off reports),
(b) the chain workload of `csvverify report.cert --chain` (HRK, HSK, CEK keys recur across reports),
and gmssl's verify of the same signatures; then the ratios, which backends ran, and "met" / "NOT met"
for each target: median <= 1.5 ms in pure Python, >= 10x faster than gmssl. --quick measures few
rounds (a smoke run; its figures are rough). CSVVERIFY_HOME is a fresh temporary directory.
"""

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import verdict  # noqa: E402

QUICK = "--quick" in sys.argv
ROUNDS_FAST = 20 if QUICK else 300
ROUNDS_GMSSL = 5 if QUICK else 25
TARGET_MS = 1.5
TARGET_RATIO = 10.0


def _signatures(count):
    from csvverify import sm2

    rng = random.Random(5)
    out = []
    for _ in range(count):
        d = rng.randrange(1, int(sm2.N) - 1)
        msg = rng.randbytes(180)
        r, s = sm2.sign(d, b"BENCH-PEK", msg, rng.randrange(1, int(sm2.N) - 1))
        out.append((sm2.public_key(d), msg, r, s))
    return out


def _median_ms(fn, items):
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def measure_backend():
    """Run inside a child so the backend (gmpy2 or not) is fixed at import."""
    from csvverify import sm2
    from csvverify.forge import Forge

    sigs = _signatures(ROUNDS_FAST)

    def cold(item):
        key, msg, r, s = item
        sm2.clear_caches()
        assert sm2.verify(key, b"BENCH-PEK", msg, r, s)

    forge = Forge(signer="fast")
    chain = []
    for chip in range(20):
        raw = forge.report(1, chip_id=f"BENCHCHIP{chip:04d}")
        chain.append(raw)
    from csvverify.report import parse_report
    from csvverify.certs import parse_csv_cert, parse_root_cert

    hsk = parse_root_cert(forge.hsk_cert)
    root = parse_root_cert(forge.root_cert)
    steps = []
    for chip, raw in enumerate(chain):
        rep = parse_report(raw)
        cek = parse_csv_cert(forge.cek_cert(f"BENCHCHIP{chip:04d}"))
        pek = rep.pek()
        steps += [(root.key, root.uid, hsk.signed_bytes, hsk.signature),
                  (hsk.key, hsk.uid, cek.signed_bytes, cek.slots[0].signature),
                  (cek.key, cek.uid, pek.signed_bytes, pek.slots[0].signature),
                  (pek.key, pek.uid, rep.signed_bytes, rep.signature)]
    steps = steps * 4
    sm2.clear_caches()

    def chained(item):
        key, uid, msg, sig = item
        sm2._RESULTS.clear()  # measure the arithmetic, not remembered results; key tables stay warm
        assert sm2.verify(key, uid, msg, sig.r, sig.s)

    return {"backend": sm2.BACKEND, "cold_ms": _median_ms(cold, sigs), "chain_ms": _median_ms(chained, steps)}


def measure_gmssl():
    from gmssl.sm2 import CryptSM2

    from csvverify import sm2

    sigs = _signatures(ROUNDS_GMSSL)

    def one(item):
        key, msg, r, s = item
        e = sm2.digest(b"BENCH-PEK", key, msg).to_bytes(32, "big")  # gmssl takes e; ZA is computed the same way
        c = CryptSM2(private_key="", public_key="")
        c.public_key = f"{key.x:064x}{key.y:064x}"
        assert c.verify(f"{r:064x}{s:064x}", e)

    return {"backend": "gmssl", "cold_ms": _median_ms(one, sigs)}


def _child(env_extra):
    env = dict(os.environ, **env_extra)
    args = [sys.executable, __file__, "--child"] + (["--quick"] if QUICK else [])
    out = subprocess.run(args, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    if "--child" in sys.argv:
        print(json.dumps(measure_backend()))
        return
    with tempfile.TemporaryDirectory(prefix="csvverify-bench-home-") as home:
        os.environ["CSVVERIFY_HOME"] = home
        results = [_child({"CSVVERIFY_NO_GMPY2": "1"})]
        fast = _child({})
        if fast["backend"] != results[0]["backend"]:
            results.append(fast)
        gm = measure_gmssl()
    names = {"python": "pure Python", "gmpy2": "gmpy2"}
    print(f"backends measured: {', '.join(names.get(r['backend'], r['backend']) for r in results)}"
          + ("" if len(results) > 1 else " (gmpy2 is not installed)") + (" — quick run, rough figures" if QUICK else ""))
    print(f"{'backend':<12} {'new key (ms)':>13} {'chain workload (ms)':>20} {'vs gmssl (new key)':>19}")
    for r in results:
        print(f"{names.get(r['backend'], r['backend']):<12} {r['cold_ms']:>13.3f} {r['chain_ms']:>20.3f} "
              f"{gm['cold_ms'] / r['cold_ms']:>18.1f}x")
    print(f"{'gmssl':<12} {gm['cold_ms']:>13.3f} {'':>20} {'1.0x':>19}")
    pure = results[0]
    assert pure["backend"] == "python", "the first child must run without gmpy2"
    ratio = gm["cold_ms"] / pure["cold_ms"]
    print(f"\ntarget: pure-Python median <= {TARGET_MS} ms: new key {pure['cold_ms']:.3f} ms: "
          f"{verdict(pure['cold_ms'] <= TARGET_MS)}; chain workload {pure['chain_ms']:.3f} ms: "
          f"{verdict(pure['chain_ms'] <= TARGET_MS)}")
    print(f"target: >= {TARGET_RATIO:.0f}x faster than gmssl (pure Python, new key): {ratio:.1f}x: "
          f"{verdict(ratio >= TARGET_RATIO)}")


if __name__ == "__main__":
    main()
