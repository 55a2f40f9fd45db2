"""Fixtures for the C collector tests: a private copy of collector/ built once per session.

The copy keeps the tests away from builds other people run in the checkout at the same time. Every
test that needs the C toolchain skips with the missing piece named (gcc/make from build-essential,
the OpenSSL headers and static libcrypto from libssl-dev).
"""

import shutil
import tempfile
from pathlib import Path

import pytest
from collector_support import HERE, copy_collector, make, run, toolchain_problem


@pytest.fixture(scope="session")
def toolchain():
    problem = toolchain_problem()
    if problem:
        pytest.skip(f"cannot build the C collector: {problem}")


@pytest.fixture(scope="session")
def collector(toolchain, tmp_path_factory) -> Path:
    """A private copy of collector/ with the static tools built (`make`)."""
    build_dir = copy_collector(tmp_path_factory.mktemp("collector") / "collector")
    make(build_dir)
    return build_dir


@pytest.fixture(scope="session")
def dynamic(collector) -> Path:
    """`make dynamic` in the same copy; returns build/dynamic."""
    make(collector, "dynamic")
    return collector / "build" / "dynamic"


@pytest.fixture(scope="session")
def fake_driver(toolchain, tmp_path_factory) -> Path:
    """LD_PRELOAD library that answers GET_REPORT with a canned report (see fake_csv_guest.c)."""
    out = tmp_path_factory.mktemp("fake-driver") / "fake_csv_guest.so"
    result = run(["gcc", "-shared", "-fPIC", "-Wall", "-Werror", "-o", out, HERE / "fake_csv_guest.c", "-ldl",
                  "-lcrypto"])
    assert result.returncode == 0, result.stderr
    return out


@pytest.fixture
def world_dir(tmp_path_factory):
    """A directory uid 65534 can enter (pytest's own temp root is private to root)."""
    path = Path(tempfile.mkdtemp(prefix="csv-collector-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)
