"""What the benchmark scripts share: how a target is printed, the csvverify to run, wall times, and bytecode.

Each script imports it from its own folder (a script's folder is on sys.path).
"""

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "csvverify"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def executable() -> str:
    """The csvverify of this interpreter's environment, else the one on PATH."""
    beside = Path(sys.executable).with_name("csvverify")
    if beside.exists():
        return str(beside)
    found = shutil.which("csvverify")
    if not found:
        sys.exit("csvverify is not installed beside this Python nor on PATH: pip install -e . first")
    return found


def median_wall(commands: list, runs: int, env=None, check: bool = True) -> float:
    """Median wall time of running ``commands`` (argument lists) one after another, ``runs`` times."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        for cmd in commands:
            subprocess.run(cmd, check=check, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def compile_package(env) -> None:
    """Compiled bytecode, as `pip install` leaves it: otherwise every process start compiles every module.
    ``env`` (os.environ or a copy the benchmark runs with) loses PYTHONDONTWRITEBYTECODE."""
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(PACKAGE)], check=True, stdout=subprocess.DEVNULL,
                   env=env)
