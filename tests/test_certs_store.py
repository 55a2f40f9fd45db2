"""The trust store: import with verification, lookup order, bundles, and `csvverify certs …`."""

import io
import json
import shutil
import tarfile

import pytest

from csvverify.hashing import sha256
from csvverify.store import BUNDLE_SCHEMA, CertStore, chip_from_path

CHIP = "FORGE0CHIP0001"
REAL_CHIP = "NZA9T14052605"


@pytest.fixture
def forge_files(tmp_path, forge):
    root = tmp_path / "test-root.cert"
    root.write_bytes(forge.root_cert)
    chip_dir = tmp_path / "tree" / CHIP
    chip_dir.mkdir(parents=True)
    (chip_dir / "hsk_cek.cert").write_bytes(forge.hsk_cek())
    report = tmp_path / "report.cert"
    report.write_bytes(forge.report(1))
    return root, chip_dir.parent, report


def _verdict(run_cli, *args):
    res = run_cli(*args, "--json")
    return res.exit_code, json.loads(res.stdout)["verdicts"][0]


def _checks(v):
    return {c["id"]: c for c in v["checks"]}


def _untar(path) -> dict:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _tar(path, files: dict) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _record(blob: bytes, chip_id=None, kind="hsk_cek", **provenance) -> dict:
    when = "2026-01-02T03:04:05+00:00"
    prov = {"source": "file /elsewhere/hsk_cek.cert", "imported_at": when, "chip_from": "--chip-id",
            "verification": {"ok": True, "problems": [], "checked_at": when}} | provenance
    return {"kind": kind, "sha256": sha256(blob).hex(), "chip_id": chip_id, "untrusted": False, "provenance": [prov]}


def _bundle(path, records, blobs, extra=None) -> None:
    files = {"manifest.json": json.dumps({"schema": BUNDLE_SCHEMA, "entries": records}).encode()}
    files |= {f"certs/{sha256(b).hex()}.cert": b for b in blobs} | (extra or {})
    _tar(path, files)


# -- import and lookup ---------------------------------------------------------------------------------

def test_real_vector_import_then_verify_without_flags(run_cli, real_dir):
    res = run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP)
    assert res.exit_code == 0 and f"imported: hsk_cek chip {REAL_CHIP}" in res.output
    code, v = _verdict(run_cli, real_dir / "report.cert", "--chain")
    assert code == 0 and "trust store" in v["trust"]["collateral"]["hsk"]
    binding = _checks(v)["chip.binding"]
    assert binding["status"] == "pass" and f"certificates filed under '{REAL_CHIP}' (trust store" in binding["reason"]
    listing = json.loads(run_cli("certs", "list", "--json").stdout)
    entry = listing["entries"][0]
    assert entry["chip_id"] == REAL_CHIP and entry["trusted"] is True and entry["chip_from"] == "--chip-id"
    assert entry["sha256"] == "fab70086d8f510264ed3c2d8c9ff6371460d01cfc356e4bc5fcb6fcbe96e54f7"
    assert str((real_dir / "hsk_cek.cert").resolve()) in entry["source"] and entry["verification"]["ok"]


def test_acceptance_plain_import_then_verify(run_cli, real_dir):
    """The issue's literal scenario: no --chip-id, a path that names no chip, then --chain with no cert flags."""
    res = run_cli("certs", "import", real_dir / "hsk_cek.cert")
    assert res.exit_code == 0 and "filed without a chip id" in res.stderr and "--chip-id CHIP" in res.stderr
    code, v = _verdict(run_cli, real_dir / "report.cert", "--chain")
    assert code == 0 and "matched by the CEK's signature" in v["trust"]["collateral"]["cek"]
    binding = _checks(v)["chip.binding"]
    assert binding["status"] == "skipped" and "were not filed under a chip id" in binding["reason"]
    unbound = next(f for f in v["findings"] if f["id"] == "chip-id-unbound")["message"]
    assert "not found by chip id" in unbound and "KDS lookup" not in unbound
    entry = json.loads(run_cli("certs", "list", "--json").stdout)["entries"][0]
    assert entry["chip_id"] is None and entry["chip_from"] is None and entry["trusted"] is True
    assert entry["sha256"] == sha256((real_dir / "hsk_cek.cert").read_bytes()).hex()
    assert entry["source"].startswith("file ")


@pytest.mark.parametrize("layout", ["{chip}/hsk_cek.cert", "{chip}_hsk_cek.cert"])
def test_chip_id_is_taken_from_other_tools_paths(run_cli, real_dir, tmp_path, layout):
    path = tmp_path / layout.format(chip=REAL_CHIP)
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(real_dir / "hsk_cek.cert", path)
    res = run_cli("certs", "import", path)
    assert res.exit_code == 0 and f"chip {REAL_CHIP} (chip id from the file's path" in res.output
    assert "filed without a chip id" not in res.output
    (entry,) = CertStore().entries()
    assert entry.chip_id == REAL_CHIP and entry.chip_from.startswith("the file's path")
    code, v = _verdict(run_cli, real_dir / "report.cert", "--chain")
    assert code == 0 and _checks(v)["chip.binding"]["status"] == "pass"


def test_untrusted_chain_is_refused_or_kept_unused(run_cli, forge_files):
    root, tree, report = forge_files
    res = run_cli("certs", "import", tree)
    assert res.exit_code == 1 and "does not chain to a trusted root" in res.output
    assert CertStore().entries() == []
    res = run_cli("certs", "import", tree, "--untrusted")
    assert res.exit_code == 0 and "UNTRUSTED" in res.output
    res = run_cli(report, "--chain", "--trust-root", root, "-q")
    assert res.exit_code == 4  # kept, but never used for lookups
    assert "1 UNTRUSTED entry" in res.output and "certs remove" in res.output  # and the hint says so


def test_untrusted_entry_is_upgraded_by_a_trusted_import(run_cli, forge_files):
    root, tree, report = forge_files
    run_cli("certs", "import", tree, "--untrusted")
    assert run_cli("certs", "import", "--root", root).exit_code == 0
    res = run_cli("certs", "import", tree)
    assert res.exit_code == 0 and "upgraded (was UNTRUSTED): hsk_cek chip FORGE0CHIP0001" in res.output
    (entry,) = [e for e in CertStore().entries() if e.kind == "hsk_cek"]
    assert entry.trusted and not entry.untrusted
    assert run_cli(report, "--chain", "-q").exit_code == 0


def test_untrusted_import_of_a_cert_that_verifies_is_trusted(run_cli, real_dir):
    run_cli("certs", "import", real_dir / "hsk_cek.cert", "--untrusted", "--chip-id", REAL_CHIP)
    (entry,) = CertStore().entries()
    assert entry.trusted  # --untrusted keeps what fails; it does not demote what verifies


def test_certs_remove(run_cli, forge_files, real_dir):
    root, tree, report = forge_files
    run_cli("certs", "import", "--root", root)
    run_cli("certs", "import", tree)
    run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP)
    store = CertStore()
    real = next(e for e in store.entries() if e.chip_id == REAL_CHIP)
    res = run_cli("certs", "remove", real.sha256[:10])
    assert res.exit_code == 0 and f"removed: hsk_cek chip {REAL_CHIP}" in res.output
    assert not (store.dir / f"{real.sha256}.cert").exists()
    assert run_cli("certs", "remove", "--chip-id", CHIP).exit_code == 0
    assert [e.kind for e in store.entries()] == ["root"]
    assert run_cli(report, "--chain", "--hsk-cek", tree / CHIP / "hsk_cek.cert", "-q").exit_code == 0
    root_entry = store.entries()[0]
    assert run_cli("certs", "remove", root_entry.sha256).exit_code == 0
    assert run_cli(report, "--chain", "--hsk-cek", tree / CHIP / "hsk_cek.cert", "-q").exit_code == 3  # untrusted now
    res = run_cli("certs", "remove", "--chip-id", "NOSUCHCHIP01")
    assert res.exit_code == 1 and "no trust store entry matches chip 'NOSUCHCHIP01'" in res.output
    assert run_cli("certs", "remove").exit_code == 2
    assert run_cli("certs", "remove", "xyz").exit_code == 2


def test_ambiguous_remove_prefix_is_refused(run_cli, real_dir):
    run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP)
    store = CertStore()
    index = json.loads((store.dir / "index.json").read_text())
    twin = dict(index["entries"][0], sha256="fab7" + "0" * 60, chip_id="NZA9T14052606")
    index["entries"].append(twin)
    (store.dir / "index.json").write_text(json.dumps(index))
    res = run_cli("certs", "remove", "fab7")
    assert res.exit_code == 2 and "sha256 prefix fab7 matches 2 certificates" in res.output
    assert len(store.entries()) == 2
    assert run_cli("certs", "remove", "fab70086").exit_code == 0 and len(store.entries()) == 1


def test_root_import_is_explicit(run_cli, forge_files):
    root, tree, report = forge_files
    res = run_cli("certs", "import", root)
    assert res.exit_code == 1 and "certs import --root FILE" in res.output
    assert run_cli("certs", "import", "--root", root).exit_code == 0
    res = run_cli("certs", "import", tree)
    assert res.exit_code == 0 and "chip FORGE0CHIP0001" in res.output  # chip id taken from the directory name
    code, v = _verdict(run_cli, report, "--chain")
    assert code == 0
    assert [r["kind"] for r in v["trust"]["roots"]] == ["pinned", "extra"]
    assert v["trust"]["roots"][1]["imported_at"] and v["trust"]["roots"][1]["source"] == f"file {root.resolve()}"
    reason = _checks(v)["root.pinned"]["reason"]
    assert f"imported into the trust store from file {root.resolve()} on" in reason
    assert "--trust-root named it" not in reason


def test_trust_root_at_import_is_named_in_the_listing(run_cli, forge_files):
    root, tree, report = forge_files
    res = run_cli("certs", "import", tree, "--trust-root", root)
    assert res.exit_code == 0 and f"verified only with --trust-root {root}" in res.output
    assert "verified only with --trust-root" in run_cli("certs", "list").output
    assert json.loads(run_cli("certs", "list", "--json").stdout)["entries"][0]["standing"].startswith(
        "verified only with --trust-root")
    assert run_cli(report, "--chain", "-q").exit_code == 3  # which is why the listing does not just say "trusted"
    run_cli("certs", "import", "--root", root)
    assert [e["standing"] for e in json.loads(run_cli("certs", "list", "--json").stdout)["entries"]] == ["trusted"] * 2


def test_root_that_is_not_self_signed_is_refused(run_cli, tmp_path, forge):
    hsk = tmp_path / "hsk.cert"
    hsk.write_bytes(forge.hsk_cert)
    res = run_cli("certs", "import", "--root", hsk)
    assert res.exit_code == 1 and "not a valid self-signed root" in res.output


def test_key_padding_is_reported_not_a_traceback(run_cli, tmp_path, forge):
    root = bytearray(forge.root_cert)
    root[68 + 40] = 1  # qx padding
    padroot = tmp_path / "padroot.cert"
    padroot.write_bytes(bytes(root))
    res = run_cli("certs", "show", padroot)
    assert res.exit_code == 1 and "qx is wider than 32 bytes" in res.output
    res = run_cli("certs", "import", "--root", padroot)
    assert res.exit_code == 1 and "qx is wider than 32 bytes" in res.output
    blob = bytearray(forge.hsk_cek())
    blob[832 + 92 + 50] = 7  # CEK qy padding
    padcek = tmp_path / "padcek.cert"
    padcek.write_bytes(bytes(blob))
    res = run_cli("certs", "import", padcek)
    assert res.exit_code == 1 and "CEK: qy is wider than 32 bytes" in res.output and CertStore().entries() == []


@pytest.mark.parametrize("chip", ["", " LEADING", "TAB\tCHIP", "Ünicode", "X" * 64])
def test_chip_id_is_validated(run_cli, real_dir, chip):
    res = run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", chip)
    assert res.exit_code == 2 and "--chip-id" in res.output and CertStore().entries() == []


def test_lookup_order(run_cli, tmp_path, forge, forge_files, monkeypatch):
    root, tree, report = forge_files
    other = tmp_path / "other"
    (other / CHIP).mkdir(parents=True)
    (other / CHIP / "hsk_cek.cert").write_bytes(forge.hsk_cek())
    monkeypatch.setenv("CSVVERIFY_CERT_PATHS", str(other / "{chip}" / "hsk_cek.cert"))

    def source(*extra):
        code, v = _verdict(run_cli, report, "--chain", "--trust-root", root, *extra)
        assert code == 0, v
        return v["trust"]["collateral"]["hsk"]

    assert "(standard path)" in source()
    run_cli("certs", "import", "--root", root)
    run_cli("certs", "import", tree)
    assert source().startswith("trust store")
    assert "(--certs)" in source("--certs", other)
    assert "(--hsk-cek)" in source("--hsk-cek", other / CHIP / "hsk_cek.cert")


def test_csv_rs_cache_path_is_a_standard_path(run_cli, tmp_path, forge, forge_files, monkeypatch):
    from csvverify import collateral

    monkeypatch.delenv("CSVVERIFY_CERT_PATHS")
    assert "/opt/dcu/certs/{chip}_hsk_cek.cert" in collateral.standard_paths()
    root, _, report = forge_files
    (tmp_path / "dcu").mkdir()
    (tmp_path / "dcu" / f"{CHIP}_hsk_cek.cert").write_bytes(forge.hsk_cek())
    monkeypatch.setenv("CSVVERIFY_CERT_PATHS", str(tmp_path / "dcu" / "{chip}_hsk_cek.cert"))
    code, v = _verdict(run_cli, report, "--chain", "--trust-root", root)
    assert code == 0 and f"{CHIP}_hsk_cek.cert (standard path)" in v["trust"]["collateral"]["hsk"]
    assert _checks(v)["chip.binding"]["status"] == "pass"


@pytest.mark.parametrize("args, message", [
    (["--hsk", "H"], "--hsk and --cek must be given together"),
    (["--hsk-cek", "HC", "--hsk", "H", "--cek", "C"], "--hsk-cek cannot be combined"),
    (["--certs", "HC"], "--certs needs a directory"),
])
def test_collateral_option_conflicts_are_usage_errors(run_cli, forge_files, tmp_path, args, message):
    _, tree, report = forge_files
    names = {"H": tmp_path / "test-root.cert", "C": tmp_path / "test-root.cert", "HC": tree / CHIP / "hsk_cek.cert"}
    res = run_cli(report, *[names.get(a, a) for a in args])
    assert res.exit_code == 2 and message in res.output


def test_path_traversal_chip_ids_never_become_paths(tmp_path, forge, run_cli, monkeypatch):
    evil = tmp_path / "evil.cert"
    evil.write_bytes(forge.report(1, chip_id="../../etc"))
    monkeypatch.setenv("CSVVERIFY_CERT_PATHS", str(tmp_path / "{chip}" / "x"))
    _, v = _verdict(run_cli, evil, "--chain", "--certs", tmp_path)
    looked = _checks(v)["collateral"]["reason"]
    assert "not a plain name" in looked and "etc" not in looked.split("not a plain name")[1]


# -- a damaged store ---------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [b"x", b"[]", b'{"schema": "csvverify/certstore/v1", "entries": [{"kind": 1}]}',
                                     b'{"schema": "csvverify/certstore/v1", "entries": "none"}'])
def test_damaged_index_is_a_clear_error_and_blocks_only_what_needs_it(run_cli, forge_files, content):
    root, tree, report = forge_files
    store = CertStore()
    store.dir.mkdir(parents=True)
    (store.dir / "index.json").write_bytes(content)
    res = run_cli("certs", "list")
    assert res.exit_code == 1 and "the trust store index is damaged" in res.output
    assert f"hint: move {store.dir / 'index.json'} aside" in res.output
    assert run_cli(report, "--no-chain", "-q").exit_code == 0  # verification that does not need the store
    assert run_cli(report, "-q").exit_code == 0
    code, v = _verdict(run_cli, report, "--chain", "--trust-root", root, "--hsk-cek", tree / CHIP / "hsk_cek.cert")
    assert code == 0 and any(f["id"] == "trust-store-unusable" for f in v["findings"])
    code, v = _verdict(run_cli, report, "--chain", "--trust-root", root)
    assert code == 4 and "the trust store (unusable: " in _checks(v)["collateral"]["reason"]
    assert "index.json aside and import the collateral again" in v["hint"]


def test_damaged_index_is_read_once_until_it_changes(tmp_path, monkeypatch):
    """A batch looks in the store for every report: a damaged index gives the same error each time, parsed once."""
    from csvverify.store import StoreError

    store = CertStore(tmp_path)
    store.dir.mkdir(parents=True)
    index = store.dir / "index.json"
    index.write_bytes(b"x")
    reads = []
    real_read = CertStore._read_index
    monkeypatch.setattr(CertStore, "_read_index", lambda self, path: reads.append(path) or real_read(self, path))
    messages = set()
    for _ in range(3):
        with pytest.raises(StoreError) as err:
            store.entries()
        messages.add((err.value.message, err.value.hint))
    assert len(reads) == 1 and len(messages) == 1 and "the trust store index is damaged" in messages.pop()[0]
    index.write_bytes(b'{"schema": "csvverify/certstore/v1", "entries": []}')  # mended: read again
    assert store.entries() == [] and len(reads) == 2


def test_bundle_with_a_bad_field_cannot_break_the_store(run_cli, tmp_path, real_dir):
    blob = (real_dir / "hsk_cek.cert").read_bytes()
    bad = _record(blob, REAL_CHIP)
    bad["provenance"][0]["verification"] = []
    bundle = tmp_path / "b.tar"
    _bundle(bundle, [bad, _record(blob, "NZA9T14052606")], [blob])
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 1
    assert "manifest.json.entries[0].provenance[0].verification: expected an object" in res.output
    assert run_cli("certs", "list").exit_code == 0  # the good entry went in, and the store still reads
    assert [e.chip_id for e in CertStore().entries()] == ["NZA9T14052606"]


@pytest.mark.parametrize("change, message", [
    (("kind", "x"), "entries[0].kind: expected one of"),
    (("sha256", "abc"), "entries[0].sha256: expected 64 lowercase hex digits"),
    (("chip_id", 7), "entries[0].chip_id: not a chip id"),
    (("untrusted", "no"), "entries[0].untrusted: expected true or false"),
    (("provenance", []), "entries[0].provenance: expected a non-empty list"),
    (("source", 5), "entries[0].provenance[0].source: expected a non-empty string"),
    (("imported_at", "yesterday"), "entries[0].provenance[0].imported_at: expected an ISO 8601 time"),
    (("ok", "yes"), "entries[0].provenance[0].verification.ok: expected true or false"),
    (("surprise", 1), "entries[0]: unknown field 'surprise'"),
])
def test_bundle_fields_are_validated(run_cli, tmp_path, real_dir, change, message):
    blob = (real_dir / "hsk_cek.cert").read_bytes()
    record = _record(blob, REAL_CHIP)
    key, value = change
    if key in ("source", "imported_at"):
        record["provenance"][0][key] = value
    elif key == "ok":
        record["provenance"][0]["verification"]["ok"] = value
    else:
        record[key] = value
    bundle = tmp_path / "b.tar"
    _bundle(bundle, [record], [blob])
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 1 and message in res.output, res.output
    assert CertStore().entries() == []


@pytest.mark.parametrize("manifest, message", [
    (b"[]", "the manifest is not a JSON object"), (b'{"schema": "other"}', "is not csvverify/bundle/v2"),
    (b"{", "not a usable csvverify certificate bundle"),
])
def test_unusable_manifest_is_one_clear_error(run_cli, tmp_path, manifest, message):
    bundle = tmp_path / "b.tar"
    _tar(bundle, {"manifest.json": manifest})
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 1 and message in res.output


def test_a_forged_provenance_is_history_not_the_source(run_cli, tmp_path, real_dir):
    blob = (real_dir / "hsk_cek.cert").read_bytes()
    bundle = tmp_path / "b.tar"
    _bundle(bundle, [_record(blob, REAL_CHIP, source="url https://cert.hygon.cn/forged",
                             imported_at="2020-01-01T00:00:00+00:00")], [blob])
    assert run_cli("certs", "import", bundle).exit_code == 0
    (entry,) = CertStore().entries()
    assert entry.source == f"bundle {bundle.resolve()} (sha256 {sha256(bundle.read_bytes()).hex()})"
    assert entry.imported_at != "2020-01-01T00:00:00+00:00"
    assert entry.verification["checked_at"] != "2026-01-02T03:04:05+00:00"  # checked here, now
    assert entry.history[0]["source"] == "url https://cert.hygon.cn/forged"
    assert entry.chip_from == "the bundle's manifest"


def test_damaged_blob_is_repaired_by_importing_again(run_cli, real_dir):
    run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP)
    store = CertStore()
    (entry,) = store.entries()
    path = store.dir / f"{entry.sha256}.cert"
    path.write_bytes(b"damaged")
    code, v = _verdict(run_cli, real_dir / "report.cert", "--chain")
    assert code == 4 and "does not match its recorded sha256" in _checks(v)["collateral"]["reason"]
    assert "already stored" in run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP).output
    assert sha256(path.read_bytes()).hex() == entry.sha256
    assert run_cli(real_dir / "report.cert", "--chain", "-q").exit_code == 0


# -- bundles -----------------------------------------------------------------------------------------

def _fill(run_cli, order, root, tree, real_dir=None):
    steps = {"root": lambda: ("--root", root), "tree": lambda: (tree,),
             "real": lambda: (real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP),
             "chipless": lambda: (real_dir / "hsk_cek.cert",)}
    for name in order:
        assert run_cli("certs", "import", *steps[name]()).exit_code == 0


def test_bundle_round_trip_is_exact_whatever_the_order(run_cli, tmp_path, forge_files, real_dir, monkeypatch):
    root, tree, report = forge_files
    _fill(run_cli, ["chipless", "real", "root", "tree"], root, tree, real_dir)  # the index is not in bundle order
    bundle = tmp_path / "bundle.tar"
    assert run_cli("certs", "export", bundle).exit_code == 0
    assert run_cli("certs", "export", tmp_path / "twice.tar").exit_code == 0
    assert (tmp_path / "twice.tar").read_bytes() == bundle.read_bytes()
    monkeypatch.setenv("CSVVERIFY_HOME", str(tmp_path / "airgapped"))
    res = run_cli("certs", "import", "--root", bundle)
    assert res.exit_code == 0, res.output
    again = tmp_path / "again.tar"
    run_cli("certs", "export", again)
    assert again.read_bytes() == bundle.read_bytes()
    assert all(e.source.startswith(f"bundle {bundle.resolve()}") and e.history for e in CertStore().entries())
    assert "already stored" in run_cli("certs", "import", "--root", bundle).output
    assert run_cli(report, "--chain", "-q").exit_code == 0


def _forge_bundle_in_a_new_home(run_cli, tmp_path, forge_files, monkeypatch, home: str):
    """A bundle of the forge's root and tree, exported from this home; then a fresh home named ``home``."""
    root, tree, _ = forge_files
    _fill(run_cli, ["root", "tree"], root, tree, None)
    bundle = tmp_path / "bundle.tar"
    run_cli("certs", "export", bundle)
    monkeypatch.setenv("CSVVERIFY_HOME", str(tmp_path / home))
    return bundle


def test_bundle_roots_are_imported_only_with_root(run_cli, tmp_path, forge_files, monkeypatch):
    report = forge_files[2]
    bundle = _forge_bundle_in_a_new_home(run_cli, tmp_path, forge_files, monkeypatch, "victim")
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 1
    assert "is imported from a bundle only with `certs import --root BUNDLE`" in res.output
    assert "chains only to the bundle's root" in res.output
    assert CertStore().entries() == []
    assert run_cli(report, "--chain", "-q").exit_code == 4  # nothing the bundle carried is trusted
    assert run_cli("certs", "import", "--root", bundle).exit_code == 0
    assert run_cli(report, "--chain", "-q").exit_code == 0


def test_a_bundle_root_already_trusted_here_is_no_refusal(run_cli, tmp_path, forge_files, monkeypatch):
    root, _, report = forge_files
    bundle = _forge_bundle_in_a_new_home(run_cli, tmp_path, forge_files, monkeypatch, "second")
    assert run_cli("certs", "import", "--root", root).exit_code == 0  # trusted here already
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 0, res.output
    assert "refused" not in res.output and "is already trusted here" in res.output
    assert run_cli(report, "--chain", "-q").exit_code == 0


def test_bundle_with_altered_cert_is_refused(run_cli, tmp_path, real_dir, monkeypatch):
    run_cli("certs", "import", real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP)
    bundle = tmp_path / "bundle.tar"
    run_cli("certs", "export", bundle)
    files = _untar(bundle)
    name = next(n for n in files if n.startswith("certs/"))
    files[name] = files[name][:-1] + b"\x01"
    _tar(bundle, files)
    monkeypatch.setenv("CSVVERIFY_HOME", str(tmp_path / "fresh"))
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 1 and "missing or altered" in res.output and CertStore().entries() == []


def test_bundle_larger_than_a_report_limit_imports(run_cli, tmp_path, real_dir):
    """A fleet bundle is far above the 1 MiB input limit for reports (here ~1.1 MB: 3000 chips)."""
    blob = (real_dir / "hsk_cek.cert").read_bytes()
    bundle = tmp_path / "fleet.tar"
    _bundle(bundle, [_record(blob, f"NZA9T{i:08d}") for i in range(3000)], [blob])
    assert bundle.stat().st_size > 1 << 20
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 0, res.output[-500:]
    assert len(CertStore().entries()) == 3000


def test_bundle_size_limit_has_its_own_error(run_cli, tmp_path, real_dir, monkeypatch):
    from csvverify import store

    blob = (real_dir / "hsk_cek.cert").read_bytes()
    bundle = tmp_path / "b.tar"
    _bundle(bundle, [_record(blob, REAL_CHIP)], [blob])
    monkeypatch.setattr(store, "MAX_BUNDLE", 4096)
    res = run_cli("certs", "import", bundle)
    assert res.exit_code == 1 and "limit for a bundle" in res.output


def test_old_bundles_still_import(run_cli, tmp_path, real_dir):
    blob = (real_dir / "hsk_cek.cert").read_bytes()
    old = {"kind": "hsk_cek", "sha256": sha256(blob).hex(), "chip_id": REAL_CHIP, "key_ids": {"hsk": "ab"},
           "source": "file /old/hsk_cek.cert", "imported_at": "2025-05-05T05:05:05+00:00", "untrusted": False,
           "verification": {"ok": True, "problems": [], "checked_at": "2025-05-05T05:05:05+00:00", "roots": []}}
    bundle = tmp_path / "old.tar"
    _tar(bundle, {"manifest.json": json.dumps({"schema": "csvverify/bundle/v1", "entries": [old]}).encode(),
                  f"certs/{old['sha256']}.cert": blob})
    assert run_cli("certs", "import", bundle).exit_code == 0
    assert CertStore().entries()[0].history[0]["source"] == "file /old/hsk_cek.cert"


# -- show, list, export --------------------------------------------------------------------------------

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

    assert chip_from_path(Path("/opt/hygon/csv/hsk_cek/NZA9T14052605/hsk_cek.cert")) == REAL_CHIP
    assert chip_from_path(Path("/opt/dcu/certs/NZA9T14052605_hsk_cek.cert")) == REAL_CHIP
    assert chip_from_path(Path("../shared/vectors/real/hsk_cek.cert")) is None


def test_export_to_an_unwritable_place_is_one_clear_line(run_cli, tmp_path):
    res = run_cli("certs", "export", tmp_path / "missing-dir" / "bundle.tar")
    assert res.exit_code == 1 and "cannot access" in res.output and "Traceback" not in res.output


def test_import_of_a_missing_file_does_not_stop_the_others(run_cli, tmp_path, real_dir):
    res = run_cli("certs", "import", tmp_path / "missing.cert", real_dir / "hsk_cek.cert", "--chip-id", REAL_CHIP)
    assert res.exit_code == 1 and "no such file" in res.output and len(CertStore().entries()) == 1
