import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Shared vectors live beside the checkout and are never committed; CSVVERIFY_SHARED overrides the place.
SHARED = Path(os.environ.get("CSVVERIFY_SHARED", REPO.parent / "shared"))


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared vectors are not beside this checkout "
                    f"(set CSVVERIFY_SHARED to their folder to run this test)")
    return path


@pytest.fixture
def real_dir() -> Path:
    """../shared/vectors/real: a real V1 report with its real HSK/CEK and the HRK."""
    return _need(SHARED / "vectors" / "real")


@pytest.fixture
def digest_dir() -> Path:
    """../shared/vectors/digest: launch-digest vectors."""
    return _need(SHARED / "vectors" / "digest")


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own CSVVERIFY_HOME so no test touches real state."""
    home = tmp_path_factory.mktemp("csvverify-home")
    monkeypatch.setenv("CSVVERIFY_HOME", str(home))
    monkeypatch.setenv("CSVVERIFY_CERT_PATHS", "")  # never read the host's /opt/... certificate caches
    return home


@pytest.fixture(scope="session")
def forge():
    """The deterministic test forge (its root is a test root, trusted only where a test says so)."""
    from csvverify.forge import Forge

    return Forge()


@pytest.fixture(scope="session")
def forge_roots(forge):
    from csvverify.trust import TrustRoots

    return TrustRoots().with_extra(forge.root_cert, "forge test root")


@pytest.fixture
def run_cli():
    """Invoke the CLI in-process; returns click's Result (exit_code, output, stdout, stderr)."""
    from click.testing import CliRunner

    from csvverify.cli import cli

    def run(*args, input=None):
        return CliRunner().invoke(cli, [str(a) for a in args], input=input, catch_exceptions=False)

    return run
