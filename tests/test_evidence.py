"""Evidence containers built by the forge: each shape verifies; broken shapes name the field."""

import json
import re

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
    assert binding["status"] == "skipped"  # certificates the prover sent bind nothing to a chip
    assert "the certificates came from the evidence itself, not from a lookup by chip id" in binding["reason"]
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
    binding = {c["id"]: c for c in v["checks"]}["chip.binding"]
    assert res.exit_code == 0 and binding["status"] == "skipped"
    assert binding["reason"].startswith("report and envelope agree, but both are the prover's claims; the "
                                        f"certificates ({hc} (--hsk-cek)) were not filed under a chip id")


# -- chip binding ------------------------------------------------------------------------------------

def _certs_dir(tmp_path, forge, chip="FORGE0CHIP0001", certs_of=None):
    d = tmp_path / "certs"
    (d / chip).mkdir(parents=True, exist_ok=True)
    (d / chip / "hsk_cek.cert").write_bytes(forge.hsk_cek(certs_of or chip))
    return d


def _binding(run_cli, path, *args):
    res = run_cli(path, *args, "--json")
    v = json.loads(res.stdout)["verdicts"][0]
    return res.exit_code, {c["id"]: c for c in v["checks"]}["chip.binding"], v


@pytest.mark.parametrize("shape", ["coco", "legacy"])
def test_chip_binding_passes_for_certificates_filed_under_the_chip(run_cli, tmp_path, forge, trust, shape):
    path = tmp_path / "e.json"
    path.write_bytes(forge.evidence(shape, with_certs=False))
    code, binding, _ = _binding(run_cli, path, *trust, "--certs", _certs_dir(tmp_path, forge))
    assert code == 0 and binding["status"] == "pass", binding
    assert "certificates filed under 'FORGE0CHIP0001' (" in binding["reason"] and "(--certs)" in binding["reason"]
    assert "the CEK filed under it signed this report's PEK" in binding["reason"]


def test_legacy_chip_id_is_not_an_independent_leg(run_cli, tmp_path, forge, trust):
    """The legacy shape's report is rebuilt from serial_number: report and envelope cannot disagree."""
    ev = decode_container(forge.evidence("legacy"), "e")
    assert ev.envelope.chip_id_from_envelope
    assert not decode_container(forge.evidence("coco"), "e").envelope.chip_id_from_envelope
    path = tmp_path / "legacy.json"
    path.write_bytes(forge.evidence("legacy", with_certs=False))
    hc = tmp_path / "hsk_cek.cert"
    hc.write_bytes(forge.hsk_cek())
    code, binding, v = _binding(run_cli, path, *trust, "--hsk-cek", hc)
    assert code == 0 and binding["status"] == "skipped"
    assert binding["reason"].startswith("only the report names a chip (report 'FORGE0CHIP0001' (copied from the "
                                        "envelope's serial_number))")
    assert "envelope serial_number 'FORGE0CHIP0001'" not in binding["reason"]
    finding = next(f for f in v["findings"] if f["id"] == "pek-from-envelope")
    assert "chip id only in serial_number" in finding["message"]


def test_chip_binding_without_chain_names_the_claims(run_cli, tmp_path, forge):
    path = tmp_path / "e.json"
    path.write_bytes(forge.evidence("coco", 1))
    code, binding, _ = _binding(run_cli, path, "--no-chain")
    assert binding["status"] == "skipped" and "both are the prover's claims" in binding["reason"]
    assert "--chain not requested" in binding["reason"]


def test_chip_binding_is_skipped_when_the_chain_fails(run_cli, tmp_path, forge, trust):
    """Certificates filed under the report's chip id whose CEK did not sign this PEK bind nothing."""
    path = tmp_path / "e.json"
    path.write_bytes(forge.evidence("coco", 1, with_certs=False))
    code, binding, _ = _binding(run_cli, path, *trust, "--certs",
                                _certs_dir(tmp_path, forge, certs_of="OTHERCHIP0001"))
    assert code == 3 and binding["status"] == "skipped"
    assert "but the chain did not verify (pek.signature fail)" in binding["reason"]


def test_chip_binding_fails_naming_all_three(forge):
    from csvverify.report import parse_report
    from csvverify.verify import Claims, Collateral, verify

    report = parse_report(forge.report(1, chip_id="CHIPAAAA0001"))
    hc = forge.hsk_cek("CHIPAAAA0001")
    v = verify(report, input_name="r", input_sha256=None, roots=forge_roots_for(forge), chain=True,
               collateral=Collateral(hc[:832], hc[832:], "store", "store", chip_id="CHIPCCCC0003"),
               claims=Claims("CoCo JSON", "CHIPBBBB0002"))
    binding = v.check("chip.binding")
    assert binding.status.value == "fail"
    assert binding.reason == ("chip ids disagree: report 'CHIPAAAA0001', envelope serial_number 'CHIPBBBB0002', "
                              "certificates filed under 'CHIPCCCC0003' (store)")


def forge_roots_for(forge):
    from csvverify.trust import TrustRoots

    return TrustRoots().with_extra(forge.root_cert, "forge")


def test_chip_id_unbound_says_how_the_collateral_was_found(run_cli, tmp_path, forge, trust):
    path = tmp_path / "r.cert"
    path.write_bytes(forge.report(1))
    hc = tmp_path / "hsk_cek.cert"
    hc.write_bytes(forge.hsk_cek())

    def unbound(*args):
        v = json.loads(run_cli(path, *trust, *args, "--json").stdout)["verdicts"][0]
        return next(f for f in v["findings"] if f["id"] == "chip-id-unbound")["message"]

    explicit = unbound("--hsk-cek", hc)
    assert "KDS lookup" not in explicit and f"the certificates ({hc} (--hsk-cek)) were not found by chip id" in explicit
    filed = unbound("--certs", _certs_dir(tmp_path, forge))
    assert "bound only by the chip id the certificates were filed under" in filed and "(--certs)" in filed
    assert "no certificates were found for it" in unbound()


# -- JSON that would crash a parser -------------------------------------------------------------------

@pytest.mark.parametrize("doc, message", [
    (b'{"attestation_report": ' + b"[" * 100000 + b"]" * 100000 + b"}", "JSON nested too deeply"),
    (b'{"attestation_report": {"flags": ' + b"9" * 5000 + b"}}", "JSON with a number too long"),
    (b'{"attestation_report": 1.5}', "attestation_report: expected an object or base64 text, found the number 1.5"),
])
def test_hostile_json_is_an_input_error(doc, message):
    from csvverify.evidence import decode_json

    with pytest.raises(InputError, match=message):
        decode_json(doc, "ev.json")


def test_top_level_array_is_named(forge):
    from csvverify.evidence import decode_json

    with pytest.raises(InputError, match=r"\(top level\): expected a JSON object with attestation_report, found an "
                                         r"array of 2 elements"):
        decode_json(b"[1, 2]", "ev.json")


def test_top_level_array_through_the_container_detection():
    with pytest.raises(InputError, match="expected a JSON object"):
        decode_container(b"[1, 2]", "ev.json")


@pytest.mark.parametrize("path, value, message", [
    ("attestation_report.data", [0] * 5 + [1.5] + [0] * 4090, "element 5 is the number 1.5"),
    ("attestation_report.data", [0, "7"] + [0] * 4094, 'element 1 is the string "7"'),
    ("attestation_report.magic", [True] * 16, "element 0 is true"),
    ("attestation_report.flags", [[1]], "found an array of 1 elements"),
    ("attestation_report.flags", 1e300, "found the number 1e+300"),
])
def test_bad_elements_are_named(forge, path, value, message):
    doc = json.loads(forge.evidence("coco"))
    _mutate(doc, path, value)
    with pytest.raises(InputError, match=re.escape(message)):
        decode_container(json.dumps(doc).encode(), "ev.json")
