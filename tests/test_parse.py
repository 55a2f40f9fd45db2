"""Parsing reports and certificates: the real vector's fields, layouts, containers and size errors."""

import base64
import os

import pytest

from csvverify.certs import parse_csv_cert, parse_root_cert, split_hsk_cek
from csvverify.errors import InputError
from csvverify.inputs import MAX_INPUT, decode_container, load_report, parse_evidence, read_input
from csvverify.report import deobfuscate_v1, parse_report


def test_real_report_fields(real_dir):
    r = parse_report((real_dir / "report.cert").read_bytes())
    assert r.version == 1 and r.anonce == 0x1291429B
    assert r.user_pubkey_digest == bytes(32) and r.vm_id == bytes(16) and r.vm_version == bytes(16)
    assert r.report_data == b"user data".ljust(64, b"\0")
    assert r.mnonce.hex() == "67c6697351ff4aec29cdbaabf2fbe346"
    assert r.measure.hex() == "1178dadbf826ec7a07444ba358376d81c312cb53d703f9da83b26c1eee2ea052"
    assert (r.policy, r.sig_usage, r.sig_algo) == (0x40000001, 0x1002, 4)
    assert r.chip_id == "NZA9T14052605"
    assert r.mac.hex() == "81a3a95bb2e30d62180704a8570535df84cd8e20ee2c93ff9f83cf2e4b0af923"
    assert r.sealing_key_present and not r.signer_block_clear
    pek = r.pek()
    assert (pek.version, pek.api_major, pek.api_minor) == (1, 1, 3)
    assert [(s.usage, s.algo) for s in pek.slots] == [(0x1004, 4), (0x1001, 4)]
    assert pek.uid == b"HYGON-SSD-PEK" and pek.certifying_id == bytes(16)


def test_real_certificates(real_dir):
    hrk = parse_root_cert((real_dir / "hrk.cert").read_bytes())
    hsk = parse_root_cert((real_dir / "hsk.cert").read_bytes())
    cek = parse_csv_cert((real_dir / "cek.cert").read_bytes())
    assert hrk.key_id.hex() == "3ae86a9701355cce333a589de21583d7" == hrk.certifying_id.hex()
    assert (hrk.key_usage, hrk.curve_id, hrk.uid) == (0, 3, b"HYGON-SSD-HRK")
    assert hsk.key_id.hex() == "6e1009311eb0e448f7320da5ce2d4d47" and hsk.certifying_id == hrk.key_id
    assert hsk.key_usage == 0x13
    assert hsk.key.x == 0xBFB150F7625538379BFA31B26A7BC6ED1798E3447E927A62DD79A274BB2A0EA4
    assert (cek.version, cek.pubkey_usage, cek.pubkey_algo, cek.curve_id) == (2, 0x1004, 4, 3)
    assert cek.certifying_id == hsk.key_id
    assert [(s.usage, s.algo) for s in cek.slots] == [(0x13, 4), (0x1000, 0)]
    assert not (hrk.reserved_nonzero or hsk.reserved_nonzero or cek.reserved_nonzero)
    assert split_hsk_cek((real_dir / "hsk_cek.cert").read_bytes()) == (hsk.raw, cek.raw)


def test_certificate_size_and_uid_errors(real_dir):
    hsk = (real_dir / "hsk.cert").read_bytes()
    with pytest.raises(InputError, match="831 bytes, but a root-style certificate"):
        parse_root_cert(hsk[:-1], "hsk.cert")
    bad = bytearray(hsk)
    bad[212:214] = (300).to_bytes(2, "little")
    with pytest.raises(InputError, match="uid_len 300 at offset 212"):
        parse_root_cert(bytes(bad), "hsk.cert")
    with pytest.raises(InputError, match="2916"):
        split_hsk_cek(hsk)


def test_obfuscation_round_trip(real_dir):
    raw = (real_dir / "report.cert").read_bytes()
    clear = deobfuscate_v1(raw)
    assert clear[64:73] == b"user data"
    assert deobfuscate_v1(clear) == raw
    assert clear[188:2548] != raw[188:2548] and clear[2484:] == raw[2484:]  # key and MAC untouched


def test_forge_layouts(forge):
    for version in (1, 2, 3):
        raw = forge.report(version, user_data=b"abc", measure=bytes(range(32)))
        r = parse_report(raw)
        assert r.version == version
        assert r.report_data[:3] == b"abc" and r.measure == bytes(range(32)) and r.chip_id == "FORGE0CHIP0001"
        page = parse_report(raw.ljust(4096, b"\0"))
        assert page.version == version and page.raw == raw and page.trailing == bytes(4096 - len(raw))
    v2 = parse_report(forge.report(2))
    assert v2.rtmrs[0] == v2.measure and v2.build == 2339 and v2.rtmr_version == 1 and v2.host_data is None
    v3 = parse_report(forge.report(3, host_data=b"\x07" * 64))
    assert v3.host_data == b"\x07" * 64 and "V3" in v3.layout_source


def test_explicit_version_and_ambiguity(forge):
    v3_zero_host = forge.report(3, host_data=bytes(64))
    assert parse_report(v3_zero_host).version == 2  # indistinguishable from V2; the source says so
    assert "looks the same" in parse_report(v3_zero_host).layout_source
    assert parse_report(v3_zero_host, version=3).version == 3
    with pytest.raises(InputError, match="V1 report is 2548 bytes"):
        parse_report(v3_zero_host, version=1, source="x")


def test_page_without_pek_is_rejected():
    with pytest.raises(InputError, match="no PEK certificate at offset 336"):
        parse_report(bytes(4096), source="zeros.bin")


def test_v1_page_with_nonzero_padding_is_not_read_as_v1(forge):
    page = bytearray(forge.report(1, page=True))
    page[4000] = 1
    with pytest.raises(InputError):
        parse_report(bytes(page))


def test_containers_hex_base64_wrapper(forge):
    raw = forge.report(1)
    for text, kind in [(raw.hex().encode(), "hex"), (base64.b64encode(raw), "base64"),
                       (base64.urlsafe_b64encode(raw), "base64"),
                       (b"\n".join(base64.encodebytes(raw).split(b"\n")) + b"\n", "base64"),
                       (raw.hex().upper().encode() + b"\n", "hex")]:
        ev = decode_container(text, "t")
        assert ev.report == raw and ev.container.startswith(kind)
    wrapped = b"ATTESTATION_EXT\0" + (3).to_bytes(4, "little") + forge.report(3, page=True, host_data=bytes(64))
    ev = decode_container(wrapped, "w")
    assert ev.version == 3 and parse_evidence(ev, "w").version == 3
    with pytest.raises(InputError, match="neither all-zero"):
        decode_container(b"X" * 16 + wrapped[16:], "w")


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"\x01" * 100, "100 bytes is not a report container"),
    (b"\x00" * 2547, "2547 bytes"),
    (b"zz not hex nor base64 !!", "neither hex nor valid base64"),
    (b"abcd", "decodes to 2 bytes"),
    (b'{"attestation_report": {}}', "attestation_report.body.user_pubkey_digest: missing"),
])
def test_bad_inputs_have_specific_errors(tmp_path, data, message):
    path = tmp_path / "in.cert"
    path.write_bytes(data)
    with pytest.raises(InputError, match=message) as info:
        load_report(path)
    assert str(path) in info.value.message


def test_special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="is a FIFO"):
        read_input(fifo)
    with pytest.raises(InputError, match="is a directory"):
        read_input(tmp_path)
    loop = tmp_path / "loop"
    loop.symlink_to(loop)
    with pytest.raises(InputError, match="cannot be read"):
        read_input(loop)
    big = tmp_path / "big"
    with open(big, "wb") as fh:
        fh.truncate(10 * 1024 * 1024)
    with pytest.raises(InputError, match="far too large"):
        read_input(big)
    assert MAX_INPUT < 10 * 1024 * 1024


def test_binary_report_starting_with_a_brace_is_not_json(forge):
    """About one obfuscated report in 150 begins with byte 0x7B ('{'): it is still a binary report."""
    anonce = 0x11223344
    digest = bytes([0x7B ^ 0x44]) + bytes(31)
    raw = forge.report(1, anonce=anonce, user_pubkey_digest=digest)
    assert raw[:1] == b"{"
    ev = decode_container(raw, "brace.cert")
    assert ev.container == "raw V1 report" and parse_evidence(ev, "brace.cert").user_pubkey_digest == digest
    page = decode_container(raw.ljust(4096, b"\0"), "brace.bin")
    assert page.container == "4096-byte page"


@pytest.mark.parametrize("kind, len_off", [("root", 212), ("csv", 164)])
def test_uid_len_254_is_the_largest_accepted(forge, kind, len_off):
    raw = bytearray(forge.hsk_cert if kind == "root" else forge.cek_cert())
    parse = parse_root_cert if kind == "root" else parse_csv_cert
    raw[len_off:len_off + 2] = (254).to_bytes(2, "little")
    raw[len_off + 2:len_off + 2 + 254] = b"U" * 254
    cert = parse(bytes(raw), "c")
    assert cert.uid == b"U" * 254 and cert.uid_len == 254
    assert not any("uid tail" in fault for fault in cert.reserved_nonzero)  # the field is full: no tail
    raw[len_off:len_off + 2] = (255).to_bytes(2, "little")
    with pytest.raises(InputError, match=f"uid_len 255 at offset {len_off} exceeds the 254-byte user-id field"):
        parse(bytes(raw), "c")


def test_report_text_fields_escape_every_unprintable_byte(forge):
    r = parse_report(forge.report(2, chip_id="A\x1b[2K\r\n\t\x7f\\B"))
    assert r.chip_id == "A\\x1b[2K\\x0d\\x0a\\x09\\x7f\\B"
    raw = bytearray(forge.cek_cert())
    raw[166:169] = b"\x1b\x9b\x00"
    assert parse_csv_cert(bytes(raw)).uid_text.startswith("\\x1b\\x9b\\x00")


def test_empty_signature_slot_contents_are_reserved(forge):
    cek = parse_csv_cert(forge.cek_cert())
    assert cek.slots[1].usage == 0x1000 and not cek.reserved_nonzero
    for pos in (1568, 1572, 1644 + 71):  # slot 2's algo word, r and s
        raw = bytearray(forge.cek_cert())
        raw[pos] ^= 0x01
        assert parse_csv_cert(bytes(raw)).reserved_nonzero == (
            "slot 2 (marked empty, usage 0x1000) algo and signature [1568,1716) is not zero",)
    assert not parse_csv_cert(forge.pek_cert()).reserved_nonzero  # an OCA slot is not empty


def test_pek_probe_at_the_layout(forge):
    for version in (1, 2):
        assert parse_report(forge.report(version)).pek_at_layout
    r = parse_report(bytes(2548))
    assert not r.pek_at_layout and r.pek_words == (0, 0, 0) and r.layout_from_size
    assert not parse_report(forge.report(1, page=True)).layout_from_size
    assert not parse_report(forge.report(1), version=1).layout_from_size


def test_xor_stream_by_words_equals_the_byte_stream():
    """_xor's whole-word shortcut (anonce times 0x...00000001 per word) must equal XOR with le32(anonce) repeated."""
    import random

    from csvverify.report import _xor

    rng = random.Random(4)
    for _ in range(500):
        size, start = rng.choice([0, 3, 4, 8, 13, 188, 2148]), rng.choice([0, 1, 2, 3, 188, 336])
        data, anonce = rng.randbytes(size), rng.choice([0, 1, 0xFFFFFFFF, rng.randrange(1 << 32)])
        pad = anonce.to_bytes(4, "little")
        stream = (pad[start % 4:] + pad * (size // 4 + 2))[:size]
        assert _xor(data, anonce, start) == bytes(a ^ b for a, b in zip(data, stream))
