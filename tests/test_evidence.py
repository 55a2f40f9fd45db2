"""Evidence containers built by the forge: each shape verifies; broken shapes name the field."""

import json

import pytest

from csvverify.errors import InputError
from csvverify.inputs import decode_container, parse_evidence

SHAPES = [("coco", 1), ("coco", 2), ("coco", 3), ("legacy", 1), ("rats-tls", 1)]


@pytest.fixture
def trust(tmp_path, forge):
    root = tmp_path / "root.cert"
    root.write_bytes(forge.root_cert)
    return ["--chain", "--trust-root", root]


@pytest.mark.parametrize("shape, version", SHAPES)
def test_each_shape_verifies_with_certs_from_the_evidence(run_cli, tmp_path, forge, trust, shape, version):
    path = tmp_path / f"{shape}-{version}.evidence"
    path.write_bytes(forge.evidence(shape, version, user_data=b"challenge"))
    res = run_cli(path, *trust, "--expect-user-data", b"challenge".hex(), "--json")
    v = json.loads(res.stdout)["verdicts"][0]
    assert res.exit_code == 0, [c for c in v["checks"] if c["status"] == "fail"]
    assert v["report"]["version"] == version and v["report"]["chip_id"] == "FORGE0CHIP0001"
    assert "the evidence itself" in v["trust"]["collateral"]["hsk"]
    ids = {f["id"] for f in v["findings"]}
    assert "certs-from-evidence" in ids
    binding = next(c for c in v["checks"] if c["id"] == "chip.binding")
    assert binding["status"] == ("skipped" if shape == "rats-tls" else "pass")
    assert v["report"]["sealing_key"] == "blanked"


def test_coco_v1_signer_block_is_cleared_and_mac_not_checkable(forge):
    ev = decode_container(forge.evidence("coco", 1), "e")
    report = parse_evidence(ev, "e")
    assert report.signer_block_clear and ev.envelope.serial_number == "FORGE0CHIP0001"
    assert ev.envelope.pek == report.pek_raw and ev.envelope.hsk_cek == forge.hsk_cek()


def test_legacy_shape_takes_the_pek_from_the_envelope(run_cli, tmp_path, forge, trust):
    path = tmp_path / "legacy.json"
    path.write_bytes(forge.evidence("legacy"))
    v = json.loads(run_cli(path, *trust, "--json").stdout)["verdicts"][0]
    assert any(f["id"] == "pek-from-envelope" for f in v["findings"])
    assert {c["id"]: c["status"] for c in v["checks"]}["report.signature"] == "pass"


def test_envelope_serial_mismatch_fails_chip_binding(run_cli, tmp_path, forge, trust):
    path = tmp_path / "e.json"
    path.write_bytes(forge.evidence("coco", 1, serial_number="OTHERCHIP0001"))
    res = run_cli(path, *trust, "-q")
    assert res.exit_code == 3
    assert "chip.binding: chip ids disagree: report 'FORGE0CHIP0001', envelope serial_number 'OTHERCHIP0001'" in res.output


def test_envelope_pek_mismatch_is_a_finding(run_cli, tmp_path, forge, trust):
    doc = json.loads(forge.evidence("coco", 2))
    doc["cert_chain"]["pek"]["body"]["data"]["pubkey"]["key"]["x"][0] ^= 1
    path = tmp_path / "e.json"
    path.write_text(json.dumps(doc))
    v = json.loads(run_cli(path, *trust, "--json").stdout)["verdicts"][0]
    assert v["outcome"] == "pass" and any(f["id"] == "envelope-pek-mismatch" for f in v["findings"])


def test_evidence_without_certs_finds_them_elsewhere(run_cli, tmp_path, forge, trust):
    path = tmp_path / "e.json"
    path.write_bytes(forge.evidence("coco", 1, with_certs=False))
    assert run_cli(path, *trust, "-q").exit_code == 4
    hc = tmp_path / "hsk_cek.cert"
    hc.write_bytes(forge.hsk_cek())
    assert run_cli(path, *trust, "--hsk-cek", hc, "-q").exit_code == 0


def _mutate(doc, path, value):
    cur = doc
    parts = path.split(".")
    for p in parts[:-1]:
        cur = cur[int(p)] if isinstance(cur, list) else cur[p]
    if value is KeyError:
        del cur[parts[-1]]
    else:
        cur[parts[-1]] = value


@pytest.mark.parametrize("shape, path, value, message", [
    ("coco", "attestation_report.flags", KeyError, "attestation_report.flags: missing"),
    ("coco", "attestation_report.flags", "1", "attestation_report.flags: expected an integer"),
    ("coco", "attestation_report.data", [0] * 100, "attestation_report.data: expected 4096 bytes, found 100"),
    ("coco", "attestation_report.magic", [1] * 16, "attestation_report.magic: neither all-zero"),
    ("coco", "serial_number", {"x": 1}, "serial_number: expected an array"),
    ("coco", "cert_chain.hsk_cek.cek", KeyError, "cert_chain.hsk_cek.cek: missing"),
    ("coco", "cert_chain.hsk_cek.hsk.body.pubkey.x", [300] * 72, "cert_chain.hsk_cek.hsk.body.pubkey.x: expected an array"),
    ("coco", "cert_chain.pek.sigs", [], "cert_chain.pek.sigs.0.usage: missing"),
    ("legacy", "attestation_report.body.measure", KeyError, "attestation_report.body.measure: missing"),
    ("legacy", "attestation_report.anonce", -1, "attestation_report.anonce: expected an integer"),
    ("legacy", "cert_chain.pek", KeyError, "cert_chain.pek: missing"),
])
def test_broken_json_names_the_field(forge, shape, path, value, message):
    doc = json.loads(forge.evidence(shape))
    _mutate(doc, path, value)
    with pytest.raises(InputError, match=message.replace(".", r"\.").replace("(", r"\(")):
        decode_container(json.dumps(doc).encode(), "ev.json")


def test_not_json_and_not_an_object(forge):
    with pytest.raises(InputError, match="not valid JSON"):
        decode_container(b"{ nope", "ev.json")
    with pytest.raises(InputError, match="attestation_report: missing"):
        decode_container(b'{"report": 1}', "ev.json")


def test_rats_tls_length_field_checked(forge):
    blob = bytearray(forge.evidence("rats-tls"))
    blob[-4:] = (100).to_bytes(4, "little")
    with pytest.raises(InputError, match="hsk_cek is 100 bytes"):
        decode_container(bytes(blob), "rats.bin")


def test_base64_report_in_json(run_cli, tmp_path, forge, trust):
    import base64

    doc = {"attestation_report": base64.b64encode(forge.report(1)).decode(), "serial_number": "FORGE0CHIP0001"}
    path = tmp_path / "e.json"
    path.write_text(json.dumps(doc))
    hc = tmp_path / "hsk_cek.cert"
    hc.write_bytes(forge.hsk_cek())
    res = run_cli(path, *trust, "--hsk-cek", hc, "--json")
    v = json.loads(res.stdout)["verdicts"][0]
    assert res.exit_code == 0 and {c["id"]: c["status"] for c in v["checks"]}["chip.binding"] == "pass"
