"""Properties of the kernel-hashes table and the launch digest, over generated inputs."""

import hashlib
import struct
import uuid

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from csvverify.digest import DigestOptions, build_hash_table, launch_digest
from csvverify.digest import ovmf, sources
from csvverify.digest.kernel import classify_kernel
from csvverify.digest.table import table_fields

GUIDS = {
    "table": "9438d606-4f22-4cc9-b479-a793d411fd21",
    "cmdline": "97d02dd8-bd20-4c94-aa78-e7714d36ab2a",
    "initrd": "44baf731-3a2f-4bd7-9af1-41e29169781d",
    "kernel": "4de79437-abd2-427f-b835-d5b172d2045b",
}
# Offsets of each piece in the 176 bytes, in QEMU's fixed entry order: cmdline, initrd, kernel.
GUID_OFFSETS = {"table": 0, "cmdline": 18, "initrd": 68, "kernel": 118}

hashes = st.binary(min_size=32, max_size=32)


@given(hashes, hashes, hashes)
def test_table_is_176_bytes_in_fixed_order_with_efi_guids(cmdline, initrd, kernel):
    table = build_hash_table(cmdline, initrd, kernel)
    assert len(table) == 176
    for name, offset in GUID_OFFSETS.items():
        assert table[offset:offset + 16] == uuid.UUID(GUIDS[name]).bytes_le
    assert struct.unpack_from("<H", table, 16)[0] == 168
    for name, digest in (("cmdline", cmdline), ("initrd", initrd), ("kernel", kernel)):
        offset = GUID_OFFSETS[name]
        assert struct.unpack_from("<H", table, offset + 16)[0] == 50
        assert table[offset + 18:offset + 50] == digest
    assert table[168:] == bytes(8)
    assert b"".join(f.data for f in table_fields(table)) == table


def test_guid_bytes_are_efi_mixed_endian_not_reversed():
    table = build_hash_table(bytes(32), bytes(32), bytes(32))
    assert table[:16].hex() == "06d63894224fc94cb479a793d411fd21"
    assert table[:16] != uuid.UUID(GUIDS["table"]).bytes[::-1]


def _firmware(body: bytes) -> bytes:
    tail = ovmf.encode_footer_table([(ovmf.HASH_TABLE_AREA_GUID, struct.pack("<II", 0x810C00, 0x400))])
    return body + tail


launch_inputs = st.fixed_dictionaries({
    "firmware": st.binary(min_size=1, max_size=300).map(_firmware),
    "kernel": st.binary(min_size=1, max_size=300),
    "initrd": st.binary(min_size=1, max_size=300),
    "cmdline": st.binary(min_size=1, max_size=60).filter(lambda b: b"\0" not in b),
})


def _flip(data: bytes, index: int, mask: int) -> bytes:
    i = index % len(data)
    return data[:i] + bytes([data[i] ^ mask]) + data[i + 1:]


@settings(max_examples=150, deadline=None)
@given(launch_inputs, st.sampled_from(["firmware", "kernel", "initrd", "cmdline"]), st.integers(0, 10 ** 6),
       st.integers(1, 255), st.sampled_from(["sm3", "sha256"]))
def test_changing_any_input_byte_changes_the_digest(inputs, which, index, mask, algorithm):
    changed = dict(inputs, **{which: _flip(inputs[which], index, mask)})
    assume(b"\0" not in changed["cmdline"])
    # QEMU adds no table for multiboot and ELF (PVH) kernels: then kernel, initrd and cmdline are not measured.
    assume(all(classify_kernel(k[:8192], len(k)).hashes_added for k in (inputs["kernel"], changed["kernel"])))
    options = DigestOptions(algorithm=algorithm)
    if which == "firmware" and _footer(changed) != _footer(inputs):
        # The flip hit the footer table, so the table may now be refused: compare firmware-only digests.
        options = DigestOptions(algorithm=algorithm, kernel_hashes=False)
    assert launch_digest(**changed, options=options).digest != launch_digest(**inputs, options=options).digest


def _footer(inputs):
    return ovmf.parse_footer_table(inputs["firmware"], len(inputs["firmware"])).entries


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=5000), chunk=st.integers(1, 700))
def test_streaming_in_any_chunk_size_hashes_the_same_bytes(tmp_path_factory, data, chunk):
    path = tmp_path_factory.mktemp("stream") / "blob"
    path.write_bytes(data)
    original = sources.CHUNK_SIZE
    sources.CHUNK_SIZE = chunk
    try:
        sink = hashlib.sha256()
        info = sources.stream(sources.open_blob(path, "kernel"), [sink], keep_head=100, keep_tail=77)
    finally:
        sources.CHUNK_SIZE = original
    assert sink.digest() == hashlib.sha256(data).digest()
    assert (info.size, info.head, info.tail) == (len(data), data[:100], data[-77:] if data else b"")


@given(st.lists(st.tuples(st.uuids(), st.binary(max_size=40)), min_size=1, max_size=6,
                unique_by=lambda e: e[0]), st.binary(max_size=64))
def test_footer_table_parses_what_was_encoded(entries, prefix):
    image = prefix + ovmf.encode_footer_table(entries)
    table = ovmf.parse_footer_table(image[-ovmf.MAX_TABLE_TAIL:], len(image))
    assert table.problem is None and table.entries == dict(entries)
