"""Cold start of one full verification: `csvverify report.cert --chain --hsk-cek …` as a fresh process.

    python tests/bench/bench_cli.py

Baseline measured in the same run: a bare `python -c pass`. Target: median wall time <= 0.25 s.
Uses ../shared/vectors/real when present, else the bundled forge sample.
"""

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "vectors" / "real"
RUNS = 15


def _wall(cmd):
    times = []
    for _ in range(RUNS):
        t = time.perf_counter()
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    exe = shutil.which("csvverify") or str(Path(sys.executable).with_name("csvverify"))
    if (REAL / "report.cert").exists():
        args = [str(REAL / "report.cert"), "--chain", "--hsk-cek", str(REAL / "hsk_cek.cert")]
    else:
        s = REPO / "samples"
        args = [str(s / "v1-good.cert"), "--hsk-cek", str(s / "hsk_cek.cert"), "--trust-root", str(s / "test-root.cert")]
    rc = subprocess.run([exe, *args], stdout=subprocess.DEVNULL).returncode
    assert rc == 0, f"verification failed with exit {rc}"
    base = _wall([sys.executable, "-c", "pass"])
    helps = _wall([exe, "--help"])
    full = _wall([exe, *args])
    print(f"python -c pass        {base * 1000:7.1f} ms  (baseline)")
    print(f"csvverify --help      {helps * 1000:7.1f} ms  ({helps / base:.1f}x baseline)")
    print(f"csvverify … --chain   {full * 1000:7.1f} ms  ({full / base:.1f}x baseline)")
    print(f"\ntarget: cold verify median <= 250 ms: {full * 1000:.1f} ms")


if __name__ == "__main__":
    main()
