"""Launch digest library: the shared vectors, QEMU's refusals, OVMF and kernel parsing, match variants."""

import hashlib
import json
import os
import struct
import threading
import tomllib
import uuid

import pytest

from csvverify.digest import (DigestOptions, build_hash_table, explain_lines, launch_digest,
                              match_launch_digest, match_lines, policy_snippet, policy_warnings)
from csvverify.digest import compute, ovmf, sources
from csvverify.digest.kernel import NO_PVH_NOTE, classify_kernel
from csvverify.digest.sources import CHUNK_SIZE
from csvverify.errors import InputError, UsageError
from csvverify.hashing import sm3

AREA = (0x810C00, 0x400)


def firmware_bytes(size=0x10000, area=AREA, reset=0x80B004, fill=b"\x90") -> bytes:
    """A synthetic OVMF image: filler, then a footer table with the kernel-hashes area entry."""
    entries = [(ovmf.SEV_ES_RESET_BLOCK_GUID, struct.pack("<I", reset))]
    if area is not None:
        entries.append((ovmf.HASH_TABLE_AREA_GUID, struct.pack("<II", *area)))
    tail = ovmf.encode_footer_table(entries)
    return fill * (size - len(tail)) + tail


def bzimage(size=4096, seed=1) -> bytes:
    data = bytearray(hashlib.shake_256(b"kernel%d" % seed).digest(size))
    data[0x1F1] = 1
    data[0x202:0x208] = b"HdrS\x0f\x02"
    return bytes(data)


def elf_kernel(size=3 * CHUNK_SIZE, note_at=CHUNK_SIZE - 10, note_type=18, entry=0x1000000, flags=0,
               machine=62, phoff=64) -> bytes:
    """A 64-bit ELF with one PT_NOTE segment (by default a Xen PVH entry note straddling the first chunk
    boundary, far beyond the 8 KiB head)."""
    note = struct.pack("<III", 4, 8, note_type) + b"Xen\0" + struct.pack("<Q", entry)
    data = bytearray(size)
    data[:16] = b"\x7fELF\x02\x01\x01" + bytes(9)
    struct.pack_into("<HHIQQQIHHHHHH", data, 16, 2, machine, 1, 0x1000000, phoff, 0, flags, 64, 56, 1, 0, 0, 0)
    struct.pack_into("<IIQQQQQQ", data, phoff, 4, 4, note_at, 0, 0, len(note), len(note), 4)
    data[note_at: note_at + len(note)] = note
    return bytes(data[:size])


def sha(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def expected(firmware: bytes, kernel: bytes, initrd: bytes = b"", cmdline: bytes = b"", alg="sm3") -> bytes:
    """The digest written out independently from the spec's formula."""
    table = (uuid.UUID("9438d606-4f22-4cc9-b479-a793d411fd21").bytes_le + b"\xa8\x00"
             + uuid.UUID("97d02dd8-bd20-4c94-aa78-e7714d36ab2a").bytes_le + b"\x32\x00" + sha(cmdline + b"\0")
             + uuid.UUID("44baf731-3a2f-4bd7-9af1-41e29169781d").bytes_le + b"\x32\x00" + sha(initrd)
             + uuid.UUID("4de79437-abd2-427f-b835-d5b172d2045b").bytes_le + b"\x32\x00" + sha(kernel)
             + bytes(8))
    return sm3(firmware + table) if alg == "sm3" else sha(firmware + table)


# -- the shared vectors --------------------------------------------------------------------------------

def _vector_source(digest_dir, value):
    if value is None:
        return None
    return b"" if value.startswith("<empty") else digest_dir / value


@pytest.mark.parametrize("algorithm", ["sm3", "sha256"])
def test_every_shared_vector_reproduces(digest_dir, algorithm):
    vectors = json.loads((digest_dir / "vectors.json").read_text())["vectors"]
    assert len(vectors) >= 9
    for v in vectors:
        r = launch_digest(digest_dir / v["firmware"], _vector_source(digest_dir, v["kernel"]),
                          _vector_source(digest_dir, v["initrd"]), v["append"], DigestOptions(algorithm=algorithm))
        assert r.hex == v[f"{algorithm}_digest_hex"], v["id"]
        assert r.base64 == v[f"{algorithm}_digest_base64"], v["id"]
        assert (r.table.hex() if r.table else None) == v["hash_table_hex"], v["id"]


def test_vector_a4_firmware_without_hash_area_is_refused_like_qemu(digest_dir):
    with pytest.raises(InputError, match=r"hashes table area is invalid \(base=0x0 size=0x0\)") as err:
        launch_digest(digest_dir / "ovmf_OvmfX64_suffix.bin", b"", b"", "")
    assert "--no-kernel-hashes" in err.value.hint


def test_vector_firmware_footer_tables_as_documented(digest_dir):
    cases = {"ovmf_AmdSev_suffix.bin": (0x810C00, 0x400), "kata_ovmf_suffix.bin": (0x80FC00, 0x400),
             "ovmf_OvmfX64_suffix.bin": (0, 0)}
    for name, (base, size) in cases.items():
        fw = launch_digest(digest_dir / name).firmware
        assert (fw.hash_area.base, fw.hash_area.size) == (base, size), name
        assert fw.reset_vector == 0x0080B004, name


def test_explain_data_holds_every_component_hash(digest_dir):
    paths = {n: digest_dir / f"synth_{n}.bin" for n in ("kernel", "initrd")}
    r = launch_digest(digest_dir / "ovmf_AmdSev_suffix.bin", paths["kernel"], paths["initrd"], "quiet")
    fw_bytes = (digest_dir / "ovmf_AmdSev_suffix.bin").read_bytes()
    assert r.firmware.sha256 == sha(fw_bytes) and r.firmware.sm3 == sm3(fw_bytes)
    assert r.kernel.sha256 == sha(paths["kernel"].read_bytes())
    assert r.initrd.sha256 == sha(paths["initrd"].read_bytes())
    assert r.cmdline_sha256 == sha(b"quiet\0")
    text = "\n".join(explain_lines(r))
    for value in (r.firmware.sha256, r.kernel.sha256, r.initrd.sha256, r.cmdline_sha256, r.table, r.digest):
        assert value.hex() in text
    assert r.kernel.kind.kind == "bzImage" and r.kernel.kind.protocol_text == "2.15"


# -- the formula on synthetic inputs -------------------------------------------------------------------

def test_firmware_only_is_the_hash_of_the_file():
    fw = firmware_bytes()
    assert launch_digest(fw).digest == sm3(fw)
    assert launch_digest(fw, options=DigestOptions(algorithm="sha256")).digest == sha(fw)


def test_kernel_initrd_cmdline_follow_the_formula():
    fw, k, i = firmware_bytes(), bzimage(), b"initrd" * 1000
    r = launch_digest(fw, k, i, "console=ttyS0")
    assert r.digest == expected(fw, k, i, b"console=ttyS0")
    assert launch_digest(fw, k).digest == expected(fw, k)  # no initrd: empty hash; no cmdline: just NUL


def test_paths_and_bytes_give_the_same_digest_across_chunk_boundaries(tmp_path):
    fw, k, i = firmware_bytes(size=CHUNK_SIZE + 0x10000), bzimage(CHUNK_SIZE * 2 + 7), b"\x01" * (CHUNK_SIZE + 1)
    for name, data in (("fw", fw), ("k", k), ("i", i)):
        (tmp_path / name).write_bytes(data)
    from_files = launch_digest(tmp_path / "fw", str(tmp_path / "k"), tmp_path / "i", b"x")
    assert from_files.digest == launch_digest(fw, k, i, b"x").digest == expected(fw, k, i, b"x")


def test_cmdline_bytes_are_verbatim_and_str_is_utf8():
    fw, k = firmware_bytes(), bzimage()
    assert launch_digest(fw, k, cmdline="msg=été").digest == launch_digest(fw, k, cmdline="msg=été".encode()).digest
    raw = b"a=\xff\xfe"
    assert launch_digest(fw, k, cmdline=raw).digest == expected(fw, k, cmdline=raw)
    # a str carrying surrogate escapes (how Python decodes non-UTF-8 argv) gives back the same bytes
    assert launch_digest(fw, k, cmdline=raw.decode("utf-8", "surrogateescape")).digest == expected(fw, k, cmdline=raw)


def test_trailing_newline_in_cmdline_is_measured_and_warned():
    fw, k = firmware_bytes(), bzimage()
    r = launch_digest(fw, k, cmdline=b"quiet\n")
    assert r.digest == expected(fw, k, cmdline=b"quiet\n")
    assert any("ends with a newline" in w for w in r.warnings)
    assert not launch_digest(fw, k, cmdline=b"quiet").warnings


def test_no_kernel_hashes_measures_the_firmware_only():
    fw = firmware_bytes(area=None)  # no area needed when the table is not measured
    r = launch_digest(fw, bzimage(), b"initrd", "x", DigestOptions(kernel_hashes=False))
    assert r.digest == sm3(fw) and r.table is None and r.kernel.sha256 == sha(bzimage())


def test_csv2_appends_vmsa_pages_in_order(tmp_path):
    fw, k = firmware_bytes(), bzimage()
    pages = [bytes([n]) * 4096 for n in (1, 2)]
    (tmp_path / "vmsa0").write_bytes(pages[0])
    r = launch_digest(fw, k, options=DigestOptions(vmsa=(tmp_path / "vmsa0", pages[1])))
    assert r.generation == "csv2" and len(r.vmsa) == 2
    table = build_hash_table(sha(b"\0"), sha(b""), sha(k))
    assert r.digest == sm3(fw + table + pages[0] + pages[1])
    assert r.digest != launch_digest(fw, k, options=DigestOptions(vmsa=(pages[1], pages[0]))).digest


def test_progress_reports_every_byte_up_to_the_total():
    fw, k, i = firmware_bytes(), bzimage(), b"\0" * (3 * CHUNK_SIZE + 5)
    seen = []
    launch_digest(fw, k, i, progress=lambda done, total: seen.append((done, total)))
    total = len(fw) + len(k) + len(i)
    assert len(seen) >= 5 and seen[-1] == (total, total)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


# -- QEMU's refusals and other bad input ---------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    ({"initrd": b"x"}, "an initrd was given without a kernel"),
    ({"cmdline": "quiet"}, "a cmdline was given without a kernel"),
])
def test_initrd_or_cmdline_without_kernel_is_refused(kwargs, message):
    with pytest.raises(UsageError, match=message):
        launch_digest(firmware_bytes(), **kwargs)


def test_nul_in_cmdline_is_refused():
    with pytest.raises(InputError, match="NUL byte at offset 3"):
        launch_digest(firmware_bytes(), bzimage(), cmdline=b"abc\0def")


def test_kernel_with_firmware_lacking_the_area_entry_is_refused():
    with pytest.raises(InputError, match="has no kernel-hashes table area"):
        launch_digest(firmware_bytes(area=None), bzimage())
    with pytest.raises(InputError, match="no OVMF footer table"):
        launch_digest(b"\xff" * 0x10000, bzimage())
    with pytest.raises(InputError, match="area is invalid"):
        launch_digest(firmware_bytes(area=(0x810C00, 175)), bzimage())


def test_hash_area_entry_too_short_has_its_own_message():
    tail = ovmf.encode_footer_table([(ovmf.HASH_TABLE_AREA_GUID, struct.pack("<I", 0x810C00))])
    fw = b"\x90" * (0x10000 - len(tail)) + tail
    with pytest.raises(InputError, match="holds 4 bytes, too few for the u32 base and u32 size") as err:
        launch_digest(fw, bzimage())
    assert "has no entry" not in err.value.message
    assert "kernel-hashes area entry too short (4 bytes, needs 8)" in "\n".join(explain_lines(launch_digest(fw)))


@pytest.mark.parametrize("call, message", [
    (lambda: launch_digest(firmware_bytes(), bzimage(), cmdline=123), "cmdline must be str or bytes, not int"),
    (lambda: DigestOptions(vmsa="page.bin"), "not a single str"),
    (lambda: DigestOptions(vmsa=bytes(4096)), "not a single bytes"),
    (lambda: DigestOptions(vmsa=3), "not int"),
    (lambda: DigestOptions(kernel_hashes="no"), "True or False"),
    (lambda: launch_digest(123), "the firmware must be a path"),
    (lambda: launch_digest(firmware_bytes(), options=DigestOptions(vmsa=[4096])), "the VMSA page 0 must be a path"),
    (lambda: launch_digest(firmware_bytes(), options="sha256"), "options must be a DigestOptions"),
])
def test_arguments_of_the_wrong_type_are_refused_by_name(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_vmsa_given_as_a_list_is_kept_as_a_tuple():
    assert DigestOptions(vmsa=[bytes(4096)]).vmsa == (bytes(4096),)


def test_empty_file_name_is_named_not_taken_for_the_current_directory():
    with pytest.raises(InputError, match="^the firmware file name is empty$"):
        launch_digest("")
    with pytest.raises(InputError, match="^the kernel file name is empty$"):
        launch_digest(firmware_bytes(), "")


def test_a_pipe_or_device_is_read_up_to_a_cap(tmp_path):
    blob = sources.open_blob("/dev/zero", "kernel", unsized_limit=3 * CHUNK_SIZE)
    assert blob.size is None
    with pytest.raises(InputError, match="kernel /dev/zero is a pipe or device and gave more than 3 MiB"):
        sources.stream(blob, [hashlib.sha256()])
    with pytest.raises(InputError, match="firmware /dev/zero is a pipe or device and gave more than 64 MiB"):
        launch_digest("/dev/zero")
    (tmp_path / "big").write_bytes(bytes(4 * CHUNK_SIZE))  # a regular file has a size: no cap
    assert sources.stream(sources.open_blob(tmp_path / "big", "kernel", 3 * CHUNK_SIZE), []).size == 4 * CHUNK_SIZE


def test_progress_total_is_none_when_an_input_is_a_pipe():
    fw = firmware_bytes()
    seen = []
    path = _pipe(fw)
    try:
        r = launch_digest(path, progress=lambda done, total: seen.append((done, total)))
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
    assert r.digest == sm3(fw) and seen[-1] == (len(fw), None)


def test_firmware_is_fed_to_two_hash_contexts_only(monkeypatch):
    sink_counts = []
    real_stream = compute.stream

    def counting_stream(blob, sinks, *args, **kwargs):
        sinks = list(sinks)
        sink_counts.append(len(sinks))
        return real_stream(blob, sinks, *args, **kwargs)

    monkeypatch.setattr(compute, "stream", counting_stream)
    fw = firmware_bytes()
    r = launch_digest(fw)
    assert sink_counts == [2]  # SM3 and SHA-256; the SHA-256 outer hash is the firmware's SHA-256
    assert r.firmware.sha256 == sha(fw) and r.firmware.sm3 == sm3(fw)


def test_explain_tells_a_byte_from_its_escape_typed_literally():
    fw, k = firmware_bytes(), bzimage()
    raw, typed = (explain_lines(launch_digest(fw, k, cmdline=c)) for c in (b"a\xff", b"a\\xff"))
    raw_line, = [x for x in raw if x.startswith("  cmdline")]
    typed_line, = [x for x in typed if x.startswith("  cmdline")]
    assert '"a\\xff"' in raw_line and '"a\\\\xff"' in typed_line


def test_csv3_is_refused_with_the_reason():
    with pytest.raises(UsageError, match="CSV3 launch digests cannot be computed") as err:
        launch_digest(firmware_bytes(), options=DigestOptions(generation="csv3"))
    assert "metadata" in err.value.hint


def test_csv2_needs_vmsa_pages_and_csv1_refuses_them():
    with pytest.raises(UsageError, match="needs the VMSA pages"):
        launch_digest(firmware_bytes(), options=DigestOptions(generation="csv2"))
    with pytest.raises(UsageError, match="only for CSV2"):
        launch_digest(firmware_bytes(), options=DigestOptions(generation="csv1", vmsa=(bytes(4096),)))
    with pytest.raises(InputError, match=r"VMSA page 0 \(given as bytes\) is 4095 bytes"):
        launch_digest(firmware_bytes(), options=DigestOptions(vmsa=(bytes(4095),)))


def test_unknown_algorithm_is_refused():
    with pytest.raises(UsageError, match="unknown algorithm 'md5'"):
        launch_digest(firmware_bytes(), options=DigestOptions(algorithm="md5"))


def test_missing_and_directory_inputs_name_the_role(tmp_path):
    with pytest.raises(InputError, match=r"^firmware .*nope: no such file$"):
        launch_digest(tmp_path / "nope")
    with pytest.raises(InputError, match="initrd .* is a directory, not a file"):
        launch_digest(firmware_bytes(), bzimage(), tmp_path)
    with pytest.raises(InputError, match=r"firmware \(given as bytes\) is empty"):
        launch_digest(b"")


def test_variable_store_is_refused_and_combined_image_noted():
    fv = bytearray(64)
    fv[16:32] = ovmf.NV_STORE_FV_GUID.bytes_le
    fv[32:40] = struct.pack("<Q", 0x20000)
    fv[40:44] = b"_FVH"
    with pytest.raises(InputError, match="variable store"):
        launch_digest(bytes(fv) + bytes(0x20000 - 64))
    combined = bytes(fv) + bytes(0x20000 - 64) + firmware_bytes()
    r = launch_digest(combined, bzimage())
    assert r.firmware.variable_store_size == 0x20000
    assert any("combined OVMF image" in n for n in r.notes)


def test_odd_firmware_size_is_warned():
    fw = firmware_bytes(size=0x1001)
    assert any("not a multiple of 4 KiB" in w for w in launch_digest(fw).warnings)


# -- OVMF footer table and kernel kinds ----------------------------------------------------------------

def test_footer_table_round_trip_keeps_every_entry():
    entries = [(uuid.uuid4(), bytes(range(n))) for n in (0, 4, 8, 33)]
    tail = ovmf.encode_footer_table(entries)
    table = ovmf.parse_footer_table(tail, len(tail))
    assert table.problem is None and table.entries == dict(entries)


def test_footer_table_problems_are_named():
    good = ovmf.encode_footer_table([(ovmf.HASH_TABLE_AREA_GUID, struct.pack("<II", *AREA))])
    assert "no OVMF footer table" in ovmf.parse_footer_table(bytes(len(good)), len(good)).problem
    bad_total = bytearray(good)
    bad_total[-50:-48] = struct.pack("<H", 0xFFFF)
    assert "invalid length" in ovmf.parse_footer_table(bytes(bad_total), len(bad_total)).problem
    bad_entry = bytearray(good)
    bad_entry[-68:-66] = struct.pack("<H", 5)  # the area entry's own length < 18
    parsed = ovmf.parse_footer_table(bytes(bad_entry), len(bad_entry))
    assert "malformed OVMF footer entry" in parsed.problem and ovmf.hash_table_area(parsed) is None
    assert "too small" in ovmf.parse_footer_table(b"\0" * 10, 10).problem


def _multiboot(offset=64, checksum_ok=True) -> bytes:
    head = bytearray(8192)
    flags = 0x3
    checksum = (-(0x1BADB002 + flags)) & 0xFFFFFFFF
    struct.pack_into("<III", head, offset, 0x1BADB002, flags, checksum if checksum_ok else checksum ^ 1)
    return bytes(head)


def test_kernel_kinds_follow_qemus_order():
    assert classify_kernel(bzimage(), 4096).kind == "bzImage"
    assert classify_kernel(_multiboot(), 8192).kind == "multiboot"
    assert classify_kernel(_multiboot(checksum_ok=False), 8192).kind == "other"
    assert classify_kernel(_multiboot(offset=66), 8192).kind == "other"  # not 4-byte aligned
    assert classify_kernel(b"\x7fELF" + bytes(100), 104).kind == "elf"
    assert classify_kernel(bytes(100), 100).kind == "other"
    assert classify_kernel(b"", 0).kind == "empty"
    both = bytearray(bzimage(8192))
    both[64:76] = _multiboot()[64:76]
    assert classify_kernel(bytes(both), 8192).kind == "bzImage"  # HdrS is checked first


@pytest.mark.parametrize("kernel, kind", [(_multiboot(), "a multiboot image"),
                                          (elf_kernel(), "an ELF image with a PVH entry note")])
def test_kernels_qemu_boots_without_hashes_leave_the_table_out(kernel, kind):
    fw = firmware_bytes(area=None)
    r = launch_digest(fw, kernel, cmdline="x")
    assert r.table is None and r.digest == sm3(fw)
    assert any(f"but {kind}: QEMU boots it" in w and "adds no kernel hashes" in w for w in r.warnings), r.warnings


def test_pvh_note_is_found_beyond_the_head_from_a_file_and_from_bytes(tmp_path):
    kernel = elf_kernel(entry=0x1234560)
    (tmp_path / "vmlinux").write_bytes(kernel)
    for source in (kernel, tmp_path / "vmlinux"):
        elf = launch_digest(firmware_bytes(), source).kernel.kind.elf
        assert (elf.pvh_entry, elf.refusal, elf.unchecked) == (0x1234560, None, None)


@pytest.mark.parametrize("kernel, refusal", [
    (elf_kernel(note_type=5), NO_PVH_NOTE),  # a note, but not the PVH one
    (elf_kernel(entry=0), NO_PVH_NOTE),  # QEMU treats a zero entry as no note
    (elf_kernel(flags=0x4), "elfboot unsupported flags = 4"),
    (elf_kernel(machine=40), "Error while loading elf kernel"),  # an ARM ELF
    (elf_kernel(size=CHUNK_SIZE), "Error while loading elf kernel"),  # the note segment runs past the end
    (b"\x7fELF" + bytes(500), "Error while loading elf kernel"),
])
def test_elf_kernels_qemu_refuses_are_named_whatever_the_kernel_hashes(kernel, refusal):
    for options in (DigestOptions(), DigestOptions(kernel_hashes=False)):
        r = launch_digest(firmware_bytes(), kernel, options=options)
        assert r.kernel.kind.elf.refusal == refusal and r.table is None
        assert [w for w in r.warnings if "an ELF image that QEMU refuses to boot" in w and refusal in w]
        assert not any("a elf" in w or "adds no kernel hashes" in w for w in r.warnings)


def test_elf_whose_program_headers_are_out_of_reach_is_worded_as_unchecked():
    r = launch_digest(firmware_bytes(), elf_kernel(phoff=9000))
    assert r.kernel.kind.elf.unchecked == "its program headers lie beyond the first 8 KiB"
    warning, = r.warnings
    assert "only if it carries a PVH entry note" in warning and NO_PVH_NOTE in warning


def test_non_bzimage_kernel_is_warned_and_keeps_the_table():
    fw, k = firmware_bytes(), bytes(4096)
    r = launch_digest(fw, k)
    assert r.digest == expected(fw, k)
    assert any("not a Linux bzImage" in w for w in r.warnings)
    assert not launch_digest(fw, bzimage()).warnings


# -- match ---------------------------------------------------------------------------------------------

def _match(measure, fw, k=None, i=None, c=None, **kwargs):
    options = kwargs.pop("options", DigestOptions())
    return match_launch_digest(measure, fw, k, i, c, options, **kwargs)


def test_match_of_the_inputs_as_given():
    fw, k = firmware_bytes(), bzimage()
    m = _match(expected(fw, k, b"i", b"c"), fw, k, b"i", "c")
    assert m.matched and not m.reproduced_by


@pytest.mark.parametrize("launched, given, change", [
    (lambda fw, k: sm3(fw), {}, "kernel hashes off"),
    (lambda fw, k: expected(fw, k, b"initrd", b"quiet"), {"c": b"quiet\n"}, "cmdline without its trailing newline"),
    (lambda fw, k: expected(fw, k, b"initrd", b"quiet\n"), {}, "cmdline with a trailing newline"),
    (lambda fw, k: expected(fw, k, b"initrd", b""), {}, "no cmdline"),
    (lambda fw, k: expected(fw, k, b"", b"quiet"), {}, "no initrd"),
    (lambda fw, k: expected(fw, k, b"initrd", b"quiet", alg="sha256"), {}, "SHA256 outer hash"),
])
def test_mismatch_names_the_variant_that_reproduces_it(launched, given, change):
    fw, k = firmware_bytes(), bzimage()
    m = _match(launched(fw, k), fw, k, b"initrd", given.get("c", "quiet"))
    assert not m.matched and m.tried > 1
    assert m.reproduced_by and m.reproduced_by[0].describe().startswith(change)
    assert len(m.reproduced_by[0].changes) == 1


def test_variants_combine_and_kernel_hashes_on_is_tried_when_given_off():
    fw, k = firmware_bytes(), bzimage()
    m = _match(expected(fw, k, b"", b"quiet", alg="sha256"), fw, k, b"initrd", "quiet")
    assert {c.how for c in m.reproduced_by[0].changes} == {"--algorithm sha256", "drop --initrd"}
    m = _match(expected(fw, k), fw, k, options=DigestOptions(kernel_hashes=False))
    assert m.reproduced_by[0].describe() == "kernel hashes on"


def test_combined_image_variant_measures_the_code_part():
    code = firmware_bytes()
    fv = bytearray(0x20000)
    fv[16:32] = ovmf.NV_STORE_FV_GUID.bytes_le
    fv[32:40] = struct.pack("<Q", 0x20000)
    fv[40:44] = b"_FVH"
    k = bzimage()
    m = _match(expected(code, k), bytes(fv) + code, k)
    assert "CODE part" in m.reproduced_by[0].describe()
    assert f"tail -c {len(code)}" in m.reproduced_by[0].changes[0].how


def test_unexplained_mismatch_lists_nothing_and_tells_about_anonce_tampering():
    fw, k = firmware_bytes(), bzimage()
    assert not _match(bytes(32), fw, k).reproduced_by
    good = expected(fw, k)
    tampered = bytes(b ^ (0x01, 0, 0, 0)[n % 4] for n, b in enumerate(good))  # anonce ^= 1 on a V1 report
    m = _match(tampered, fw, k, report_version=1)
    assert not m.matched and any("altered anonce" in n for n in m.notes)
    assert not any("anonce" in n for n in _match(tampered, fw, k, report_version=2).notes)


def test_report_policy_bits_add_notes():
    fw = firmware_bytes()
    assert any("CSV3 bit" in n for n in _match(bytes(32), fw, report_policy=0x45).notes)
    assert any("ES bit (CSV2)" in n for n in _match(bytes(32), fw, report_policy=0x5).notes)
    assert not _match(bytes(32), fw, report_policy=0x1).notes


def test_measure_must_be_32_bytes():
    with pytest.raises(UsageError, match="32 bytes, got 31"):
        _match(bytes(31), firmware_bytes())
    with pytest.raises(TypeError, match="measure must be the 32 bytes"):
        _match(32, firmware_bytes())  # bytes(32) would be 32 zero bytes


def test_unexplained_mismatch_lists_only_the_variants_tried():
    m = _match(bytes(32), firmware_bytes())  # firmware only, not a combined image: only the outer hash varies
    assert m.changes_tried == ("SHA256 outer hash instead of SM3",)
    line, = [x for x in match_lines(m, "it") if "none of" in x]
    assert "SHA256 outer hash" in line
    for untried in ("kernel hashes", "cmdline", "initrd", "CODE part"):
        assert untried not in line
    with_kernel = _match(bytes(32), firmware_bytes(), bzimage(), b"i", "quiet")
    assert {"no initrd", "cmdline with a trailing newline", "kernel hashes off (VM started without kernel-hashes=on)"} \
        <= set(with_kernel.changes_tried)


def _combined(code: bytes) -> bytes:
    fv = bytearray(0x20000)
    fv[16:32] = ovmf.NV_STORE_FV_GUID.bytes_le
    fv[32:40] = struct.pack("<Q", 0x20000)
    fv[40:44] = b"_FVH"
    return bytes(fv) + code


def _pipe(data: bytes) -> str:
    """A path that reads ``data`` from a pipe (no size, cannot seek)."""
    read_fd, write_fd = os.pipe()

    def feed():
        with os.fdopen(write_fd, "wb") as w:
            w.write(data)

    threading.Thread(target=feed, daemon=True).start()
    return f"/dev/fd/{read_fd}"


def test_combined_image_from_a_pipe_still_tries_the_code_part():
    code, k = firmware_bytes(), bzimage()
    path = _pipe(_combined(code))
    try:
        m = _match(expected(code, k), path, k)
    finally:
        os.close(int(path.rsplit("/", 1)[1]))
    assert "CODE part" in m.reproduced_by[0].describe()


def test_code_part_fork_hashes_the_code_part_in_any_chunking():
    code = firmware_bytes()
    image = _combined(code)
    for chunk in (7, 64, 65, 0x20000, len(image)):
        fork = compute.CodePartFork()
        for i in range(0, len(image), chunk):
            fork.update(memoryview(image)[i: i + chunk])
        assert fork.start == 0x20000 and fork.hashes["sm3"].digest() == sm3(code), chunk
    idle = compute.CodePartFork()
    idle.update(code)
    assert idle.start is None


# -- policy snippet ------------------------------------------------------------------------------------

def test_policy_snippet_of_an_unpinned_value_says_so():
    fw, k = firmware_bytes(), bzimage()
    for r in (launch_digest(fw, k, b"i", "quiet", DigestOptions(kernel_hashes=False)),
              launch_digest(fw, elf_kernel(), b"i", "quiet")):
        snippet = policy_snippet(r, "x")
        assert "# warning: this value does not depend on the kernel, initrd or cmdline" in snippet
        for component in ("kernel", "initrd", "cmdline"):
            line, = [x for x in snippet.splitlines() if x.startswith(f"#   {component} ") and "hashes" not in x]
            assert line.endswith("(not measured)"), line
        assert policy_warnings(r)
    pinned = policy_snippet(launch_digest(fw, k, b"i", "quiet"), "x")
    assert "does not depend" not in pinned and "not measured" not in pinned
    assert not policy_warnings(launch_digest(fw, k)) and not policy_warnings(launch_digest(fw))


def test_policy_snippet_refuses_an_sha256_digest():
    r = launch_digest(firmware_bytes(), options=DigestOptions(algorithm="sha256"))
    with pytest.raises(UsageError, match="AMD SEV"):
        policy_snippet(r, "x")


def test_policy_snippet_is_valid_toml_even_with_hostile_names(tmp_path):
    fw_path = tmp_path / 'fw\n[[measurements]]\nvalue = "00"'
    fw_path.write_bytes(firmware_bytes())
    r = launch_digest(fw_path, bzimage(), cmdline='x"\n[y]\n')
    label = 'prod "image"\\ 2026-11\n\x7f été'
    snippet = policy_snippet(r, label)
    assert tomllib.loads(snippet) == {"measurements": [{"value": r.hex, "label": label}]}
    assert "# warning: the cmdline ends with a newline" in snippet
