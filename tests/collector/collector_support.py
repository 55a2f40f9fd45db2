"""Helpers shared by the collector tests (imported by conftest.py and the test modules)."""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
COLLECTOR = REPO / "collector"
TOOLS = ("get-attestation", "ioctl-get-attestation", "get-key", "ioctl-get-key", "verify-attestation")
HERE = Path(__file__).resolve().parent


def run(cmd, cwd=None, env=None, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, **kw)


def toolchain_problem() -> str | None:
    """Why the collector cannot be built here, or None."""
    for tool, package in (("gcc", "build-essential"), ("make", "build-essential"), ("ar", "binutils")):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install {package})"
    if not Path("/usr/include/openssl/evp.h").exists():
        return "OpenSSL headers are missing (apt-get install libssl-dev)"
    static = run(["gcc", "-print-file-name=libcrypto.a"]).stdout.strip()
    if not os.path.isabs(static) or not Path(static).exists():
        return "static libcrypto.a is missing (apt-get install libssl-dev)"
    return None


def make(build_dir: Path, *targets: str, check: bool = True, **env_overrides) -> subprocess.CompletedProcess:
    env = dict(os.environ, **env_overrides)
    result = run(["make", "-C", build_dir, *targets], env=env, timeout=600)
    if check and result.returncode != 0:
        pytest.fail(f"make {' '.join(targets)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def copy_collector(dest: Path) -> Path:
    ignore = shutil.ignore_patterns("build", *TOOLS)
    shutil.copytree(COLLECTOR, dest, ignore=ignore)
    return dest
