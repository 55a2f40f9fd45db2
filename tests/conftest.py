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
    return home
