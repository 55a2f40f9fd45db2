"""Cold start of one full verification: `csvverify report.cert --chain --hsk-cek …` as a fresh process.

    python tests/bench/bench_cli.py [--runs N]      # N runs per command (default 15; 3 for a smoke run)

Baseline measured in the same run: a bare `python -c pass`. Target: median wall time <= 0.25 s.
Uses ../shared/vectors/real when present, else the bundled forge sample. The csvverify next to this
Python (the venv's own) is preferred over one on PATH; CSVVERIFY_HOME is a fresh temporary directory.
The package's bytecode is compiled first, as `pip install` does (an editable install, or an environment
with PYTHONDONTWRITEBYTECODE set, would otherwise compile every module on every start).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import compile_package, executable, median_wall, verdict  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
REAL = REPO.parent / "shared" / "vectors" / "real"
TARGET_S = 0.25


def main():
    runs = int(sys.argv[sys.argv.index("--runs") + 1]) if "--runs" in sys.argv else 15
    exe = executable()
    with tempfile.TemporaryDirectory(prefix="csvverify-bench-home-") as home:
        env = dict(os.environ, CSVVERIFY_HOME=home, CSVVERIFY_CERT_PATHS="")
        compile_package(env)
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
        base = median_wall([[sys.executable, "-c", "pass"]], runs, env, check=False)
        helps = median_wall([[exe, "--help"]], runs, env, check=False)
        full = median_wall([[exe, *args]], runs, env, check=False)
    print(f"executable: {exe}  (SM2 backend: {'gmpy2' if backend == 'gmpy2' else 'pure Python'}; {runs} runs each)")
    print(f"python -c pass        {base * 1000:7.1f} ms  (baseline)")
    print(f"csvverify --help      {helps * 1000:7.1f} ms  ({helps / base:.1f}x baseline)")
    print(f"csvverify … --chain   {full * 1000:7.1f} ms  ({full / base:.1f}x baseline)")
    print(f"\ntarget: cold verify median <= {TARGET_S * 1000:.0f} ms: {full * 1000:.1f} ms: "
          f"{verdict(full <= TARGET_S)}")


if __name__ == "__main__":
    main()
