"""The forge is deterministic, and the committed samples are exactly what it generates."""

from pathlib import Path

from csvverify.forge import Forge, write_samples

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_deterministic_and_seeded():
    assert Forge().report(1) == Forge().report(1)
    assert Forge().root_cert != Forge(seed="other").root_cert
    assert Forge().hsk_cek("A") != Forge().hsk_cek("B")


def test_committed_samples_are_current(tmp_path):
    for path in write_samples(tmp_path):
        committed = SAMPLES / path.relative_to(tmp_path)
        assert committed.read_bytes() == path.read_bytes(), f"{committed} is stale: run python -m csvverify.forge samples"


def test_forge_refuses_bad_arguments():
    import pytest

    with pytest.raises(ValueError):
        Forge().report(4)
    with pytest.raises(ValueError):
        Forge().report(1, user_data=b"x" * 65)
    with pytest.raises(ValueError):
        Forge(signer="other")
