"""The trust store: import with verification, lookup order, bundles, and `csvverify certs …`."""

import json

import pytest

from csvverify.store import CertStore, chip_from_path


@pytest.fixture
def forge_files(tmp_path, forge):
    root = tmp_path / "test-root.cert"
    root.write_bytes(forge.root_cert)
    chip_dir = tmp_path / "tree" / "FORGE0CHIP0001"
    chip_dir.mkdir(parents=True)
    (chip_dir / "hsk_cek.cert").write_bytes(forge.hsk_cek())
    report = tmp_path / "report.cert"
    report.write_bytes(forge.report(1))
    return root, chip_dir.parent, report


def test_real_vector_import_then_verify_without_flags(run_cli, real_dir):
    res = run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", "NZA9T14052605")
    assert res.exit_code == 0 and "imported: hsk_cek chip NZA9T14052605" in res.output
    res = run_cli(real_dir / "report.cert", "--chain", "--json")
    v = json.loads(res.stdout)["verdicts"][0]
    assert res.exit_code == 0 and "trust store" in v["trust"]["collateral"]["hsk"]
    checks = {c["id"]: c for c in v["checks"]}
    assert checks["chip.binding"]["status"] == "pass" and "certificate lookup 'NZA9T14052605'" in checks["chip.binding"]["reason"]
    listing = json.loads(run_cli("certs", "list", "--json").stdout)
    entry = listing["entries"][0]
    assert entry["chip_id"] == "NZA9T14052605" and entry["trusted"] is True
    assert entry["sha256"] == "fab70086d8f510264ed3c2d8c9ff6371460d01cfc356e4bc5fcb6fcbe96e54f7"
    assert str((real_dir / "hsk_cek.cert").resolve()) in entry["source"] and entry["verification"]["ok"]


def test_import_without_chip_id_matches_by_signature(run_cli, real_dir):
    assert run_cli("certs", "import", real_dir / "hsk_cek.cert").exit_code == 0
    res = run_cli(real_dir / "report.cert", "--chain", "--json")
    v = json.loads(res.stdout)["verdicts"][0]
    assert res.exit_code == 0 and "matched by the CEK's signature" in v["trust"]["collateral"]["cek"]
    assert json.loads(run_cli("certs", "list", "--json").stdout)["entries"][0]["chip_id"] is None


def test_untrusted_chain_is_refused_or_kept_unused(run_cli, forge_files):
    root, tree, report = forge_files
    res = run_cli("certs", "import", tree)
    assert res.exit_code == 1 and "does not chain to a trusted root" in res.output
    assert CertStore().entries() == []
    res = run_cli("certs", "import", tree, "--untrusted")
    assert res.exit_code == 0 and "UNTRUSTED" in res.output
    res = run_cli(report, "--chain", "--trust-root", root, "-q")
    assert res.exit_code == 4  # kept, but never used for lookups


def test_root_import_is_explicit(run_cli, forge_files):
    root, tree, report = forge_files
    res = run_cli("certs", "import", root)
    assert res.exit_code == 1 and "certs import --root FILE" in res.output
    assert run_cli("certs", "import", "--root", root).exit_code == 0
    res = run_cli("certs", "import", tree)
    assert res.exit_code == 0 and "chip FORGE0CHIP0001" in res.output  # chip id taken from the directory name
    res = run_cli(report, "--chain", "--json")
    v = json.loads(res.stdout)["verdicts"][0]
    assert res.exit_code == 0
    assert [r["kind"] for r in v["trust"]["roots"]] == ["pinned", "extra"]
    assert "imported" in v["trust"]["roots"][1]["source"]


def test_root_that_is_not_self_signed_is_refused(run_cli, tmp_path, forge):
    hsk = tmp_path / "hsk.cert"
    hsk.write_bytes(forge.hsk_cert)
    res = run_cli("certs", "import", "--root", hsk)
    assert res.exit_code == 1 and "not a valid self-signed root" in res.output


def test_lookup_order(run_cli, tmp_path, forge, forge_files, monkeypatch):
    root, tree, report = forge_files
    other = tmp_path / "other"
    (other / "FORGE0CHIP0001").mkdir(parents=True)
    (other / "FORGE0CHIP0001" / "hsk_cek.cert").write_bytes(forge.hsk_cek())
    monkeypatch.setenv("CSVVERIFY_CERT_PATHS", str(other / "{chip}" / "hsk_cek.cert"))

    def source(*extra):
        res = run_cli(report, "--chain", "--trust-root", root, "--json", *extra)
        assert res.exit_code == 0, res.output
        return json.loads(res.stdout)["verdicts"][0]["trust"]["collateral"]["hsk"]

    assert "(standard path)" in source()
    run_cli("certs", "import", "--root", root)
    run_cli("certs", "import", tree)
    assert source().startswith("trust store")
    assert "(--certs)" in source("--certs", other)
    assert "(--hsk-cek)" in source("--hsk-cek", other / "FORGE0CHIP0001" / "hsk_cek.cert")


def test_path_traversal_chip_ids_never_become_paths(tmp_path, forge, run_cli, monkeypatch):
    evil = tmp_path / "evil.cert"
    evil.write_bytes(forge.report(1, chip_id="../../etc"))
    monkeypatch.setenv("CSVVERIFY_CERT_PATHS", str(tmp_path / "{chip}" / "x"))
    res = run_cli(evil, "--chain", "--certs", tmp_path, "--json")
    looked = json.loads(res.stdout)["verdicts"][0]["checks"][1]["reason"]
    assert "not a plain name" in looked and "etc" not in looked.split("not a plain name")[1]


def test_bundle_round_trip_is_exact(run_cli, tmp_path, forge_files, real_dir, monkeypatch):
    root, tree, _ = forge_files
    run_cli("certs", "import", "--root", root)
    run_cli("certs", "import", tree)
    run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", "NZA9T14052605")
    before = CertStore().entries()
    bundle = tmp_path / "bundle.tar"
    assert run_cli("certs", "export", bundle).exit_code == 0
    monkeypatch.setenv("CSVVERIFY_HOME", str(tmp_path / "airgapped"))
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 0, res.output
    after = CertStore().entries()
    assert sorted(before, key=lambda e: e.sha256) == sorted(after, key=lambda e: e.sha256)
    again = tmp_path / "again.tar"
    run_cli("certs", "export", again)
    assert again.read_bytes() == bundle.read_bytes()
    assert "already stored" in run_cli("certs", "import", bundle).output


def test_bundle_with_altered_cert_is_refused(run_cli, tmp_path, real_dir, monkeypatch):
    import io
    import tarfile

    run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", "NZA9T14052605")
    bundle = tmp_path / "bundle.tar"
    run_cli("certs", "export", bundle)
    with tarfile.open(bundle) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    name = next(n for n in files if n.startswith("certs/"))
    files[name] = files[name][:-1] + b"\x01"
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for n, data in files.items():
            info = tarfile.TarInfo(n)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    bundle.write_bytes(out.getvalue())
    monkeypatch.setenv("CSVVERIFY_HOME", str(tmp_path / "fresh"))
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 1 and "missing or altered" in res.output and CertStore().entries() == []


def test_certs_show_and_list_text(run_cli, real_dir, forge_files):
    res = run_cli("certs", "show", real_dir / "hrk.cert")
    assert res.exit_code == 0 and "the pinned Hygon root key" in res.output
    res = run_cli("certs", "show", real_dir / "hsk_cek.cert")
    assert "chains to the pinned Hygon root key" in res.output
    res = run_cli("certs", "show", forge_files[0])
    assert "NOT the pinned Hygon root" in res.output
    res = run_cli("certs", "show", real_dir / "report.cert")
    assert res.exit_code == 1 and "is not a certificate" in res.output
    assert "is empty" in run_cli("certs", "list").output


def test_chip_from_path():
    from pathlib import Path

    assert chip_from_path(Path("/opt/hygon/csv/hsk_cek/NZA9T14052605/hsk_cek.cert")) == "NZA9T14052605"
    assert chip_from_path(Path("/opt/dcu/certs/NZA9T14052605_hsk_cek.cert")) == "NZA9T14052605"
    assert chip_from_path(Path("../shared/vectors/real/hsk_cek.cert")) is None


def test_export_to_an_unwritable_place_is_one_clear_line(run_cli, tmp_path):
    res = run_cli("certs", "export", tmp_path / "missing-dir" / "bundle.tar")
    assert res.exit_code == 1 and "cannot access" in res.output and "Traceback" not in res.output
