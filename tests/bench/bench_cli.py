"""Cold start of one full verification: `csvverify report.cert --chain --hsk-cek …` as a fresh process.

    python tests/bench/bench_cli.py [--runs N]      # N runs per command (default 15; 3 for a smoke run)

Baseline measured in the same run: a bare `python -c pass`. Target: median wall time <= 0.25 s.
Uses ../shared/vectors/real when present, else the bundled forge sample. The csvverify next to this
Python (the venv's own) is preferred over one on PATH; CSVVERIFY_HOME is a fresh temporary directory.
The package's bytecode is compiled first, as `pip install` does (an editable install, or an environment
with PYTHONDONTWRITEBYTECODE set, would otherwise compile every module on every start).
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "vectors" / "real"
TARGET_S = 0.25


def _wall(cmd, env, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def _executable() -> str:
    beside = Path(sys.executable).with_name("csvverify")
    exe = str(beside) if beside.exists() else shutil.which("csvverify")
    if exe is None:
        sys.exit("no csvverify executable beside this Python or on PATH: pip install -e . first")
    return exe


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 15
    exe = _executable()
    with tempfile.TemporaryDirectory(prefix="csvverify-bench-home-") as home:
        env = dict(os.environ, CSVVERIFY_HOME=home, CSVVERIFY_CERT_PATHS="")
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(REPO / "csvverify")], check=True,
                       stdout=subprocess.DEVNULL, env=env)
        if (REAL / "report.cert").exists():
            args = [str(REAL / "report.cert"), "--chain", "--hsk-cek", str(REAL / "hsk_cek.cert")]
        else:
            s = REPO / "samples"
            args = [str(s / "v1-good.cert"), "--hsk-cek", str(s / "hsk_cek.cert"), "--trust-root",
                    str(s / "test-root.cert")]
        rc = subprocess.run([exe, *args], stdout=subprocess.DEVNULL, env=env).returncode
        assert rc == 0, f"verification failed with exit {rc}"
        python = Path(exe).with_name("python") if Path(exe).with_name("python").exists() else Path(sys.executable)
        backend = subprocess.run([str(python), "-c", "from csvverify import sm2; print(sm2.BACKEND)"], env=env,
                                 capture_output=True, text=True).stdout.strip() or "unknown"
        base = _wall([sys.executable, "-c", "pass"], env, runs)
        helps = _wall([exe, "--help"], env, runs)
        full = _wall([exe, *args], env, runs)
    print(f"executable: {exe}  (SM2 backend: {'gmpy2' if backend == 'gmpy2' else 'pure Python'}; {runs} runs each)")
    print(f"python -c pass        {base * 1000:7.1f} ms  (baseline)")
    print(f"csvverify --help      {helps * 1000:7.1f} ms  ({helps / base:.1f}x baseline)")
    print(f"csvverify … --chain   {full * 1000:7.1f} ms  ({full / base:.1f}x baseline)")
    verdict = "met" if full <= TARGET_S else "NOT met"
    print(f"\ntarget: cold verify median <= {TARGET_S * 1000:.0f} ms: {full * 1000:.1f} ms: {verdict}")


if __name__ == "__main__":
    main()
