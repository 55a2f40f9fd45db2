"""The test forge: a deterministic synthetic chain TEST-ROOT → HSK → CEK → PEK and signed reports.

Everything here is derived from a seed, so the same seed always gives the same bytes. The root is a test
root: csvverify never trusts it unless --trust-root names it. Used by the tests, by ``samples/`` and by
the docs. Signatures are made with gmssl (an independent SM2 implementation) by default;
``signer="fast"`` uses csvverify's own arithmetic for bulk generation and gives identical bytes.

    python -m csvverify.forge samples/      # regenerate the bundled samples
"""

import json
import sys
from functools import cached_property
from pathlib import Path

from csvverify import sm2
from csvverify.certs import (ALGO_SM2_SA, CURVE_SM2, USAGE_CEK, USAGE_HRK, USAGE_HSK, USAGE_INVALID, USAGE_OCA,
                             USAGE_PEK)
from csvverify.hashing import hmac_sm3, sm3
from csvverify.report import EXT, PAGE_SIZE, V1, V1_SIZE, EXT_SIZE, deobfuscate_v1

DEFAULT_CHIP = "FORGE0CHIP0001"


def _le32(v: int) -> bytes:
    return v.to_bytes(4, "little")


def _le72(v: int) -> bytes:
    return v.to_bytes(72, "little")


class _Key:
    def __init__(self, seed: str, label: str, uid: bytes):
        self.d = int.from_bytes(sm3(f"{seed}/{label}".encode()), "big") % (int(sm2.N) - 2) + 1
        self.uid = uid
        self.key_id = sm3(f"{seed}/{label}/key-id".encode())[:16]

    @cached_property
    def public(self) -> sm2.PublicKey:
        return sm2.public_key(self.d)


def _gmssl_sign(d: int, public: sm2.PublicKey, e: bytes, k: int) -> tuple[int, int] | None:
    from gmssl.sm2 import CryptSM2

    signer = CryptSM2(private_key=f"{d:064x}", public_key="")
    signer.public_key = f"{public.x:064x}{public.y:064x}"  # set directly: the constructor mangles a leading "04"
    out = signer.sign(e, f"{k:064x}")
    return None if out is None else (int(out[:64], 16), int(out[64:], 16))


class Forge:
    def __init__(self, seed: str = "csvverify-forge", signer: str = "gmssl"):
        if signer not in ("gmssl", "fast"):
            raise ValueError("signer is 'gmssl' or 'fast'")
        self.seed = seed
        self.signer = signer
        self.root_key = _Key(seed, "root", b"FORGE-TEST-HRK")
        self.hsk_key = _Key(seed, "hsk", b"FORGE-TEST-HSK")
        self._chips: dict[str, tuple[bytes, bytes, _Key, bytes]] = {}

    # -- signing ------------------------------------------------------------------------------------

    def sign(self, key: _Key, message: bytes) -> tuple[int, int]:
        e = sm3(sm2.za(key.uid, key.public) + message)
        for counter in range(100):
            k = int.from_bytes(sm3(key.d.to_bytes(32, "big") + e + bytes([counter])), "big") % (int(sm2.N) - 1) + 1
            if self.signer == "gmssl":
                rs = _gmssl_sign(key.d, key.public, e, k)
            else:
                try:
                    rs = sm2.sign(key.d, key.uid, message, k)
                except ValueError:
                    rs = None
            if rs is not None:
                return rs
        raise RuntimeError("no usable nonce")  # pragma: no cover - probability ~ 2^-256

    def _signature(self, key: _Key, message: bytes) -> bytes:
        r, s = self.sign(key, message)
        return _le72(r) + _le72(s)

    # -- certificates -------------------------------------------------------------------------------

    def _root_style(self, key: _Key, issuer: _Key, usage: int) -> bytes:
        body = bytearray(576)
        body[0:4] = _le32(1)
        body[4:20] = key.key_id
        body[20:36] = issuer.key_id
        body[36:40] = _le32(usage)
        body[64:68] = _le32(CURVE_SM2)
        body[68:140] = _le72(key.public.x)
        body[140:212] = _le72(key.public.y)
        body[212:214] = len(key.uid).to_bytes(2, "little")
        body[214:214 + len(key.uid)] = key.uid
        return bytes(body) + self._signature(issuer, bytes(body)) + bytes(112)

    def _csv_cert(self, key: _Key, usage: int, version: int, api: tuple[int, int], certifying_id: bytes,
                  slots: list[tuple[int, _Key | None]]) -> bytes:
        body = bytearray(1044)
        body[0:4] = _le32(version)
        body[4], body[5] = api
        body[8:12] = _le32(usage)
        body[12:16] = _le32(ALGO_SM2_SA)
        body[16:20] = _le32(CURVE_SM2)
        body[20:92] = _le72(key.public.x)
        body[92:164] = _le72(key.public.y)
        body[164:166] = len(key.uid).to_bytes(2, "little")
        body[166:166 + len(key.uid)] = key.uid
        body[420:436] = certifying_id
        out = bytes(body)
        for slot_usage, signer in slots:
            if signer is None:
                out += _le32(slot_usage) + _le32(0) + bytes(144) + bytes(368)
            else:
                out += _le32(slot_usage) + _le32(ALGO_SM2_SA) + self._signature(signer, bytes(body)) + bytes(368)
        return out

    @cached_property
    def root_cert(self) -> bytes:
        """The self-signed TEST root (832 bytes). Not the Hygon root: never trusted by default."""
        return self._root_style(self.root_key, self.root_key, USAGE_HRK)

    @cached_property
    def hsk_cert(self) -> bytes:
        return self._root_style(self.hsk_key, self.root_key, USAGE_HSK)

    def chip_key(self, role: str, chip_id: str = DEFAULT_CHIP) -> _Key:
        """The forge key of a chip: role "cek", "pek" or "oca" (the root and HSK keys are ``root_key``, ``hsk_key``)."""
        if role not in ("cek", "pek", "oca"):
            raise ValueError("role is cek, pek or oca")
        return _Key(self.seed, f"{role}/{chip_id}", f"FORGE-TEST-{role.upper()}".encode())

    def resign(self, cert: bytes, signer: _Key, slot: int = 1) -> bytes:
        """A certificate edited by a test, signed again by ``signer`` so that only the edit is wrong.

        Root-style (832 bytes): the signature over [0,576). CSV (2084 bytes): signature slot ``slot`` over
        [0,1044), its usage word kept and its algo set to SM2-SA."""
        out = bytearray(cert)
        if len(cert) == 832:
            out[576:720] = self._signature(signer, bytes(cert[:576]))
        elif len(cert) == 2084:
            off = 1044 + 520 * (slot - 1)
            out[off + 4:off + 152] = _le32(ALGO_SM2_SA) + self._signature(signer, bytes(cert[:1044]))
        else:
            raise ValueError("a certificate is 832 or 2084 bytes")
        return bytes(out)

    def _chip(self, chip_id: str):
        if chip_id not in self._chips:
            cek_key, pek_key, oca_key = (self.chip_key(role, chip_id) for role in ("cek", "pek", "oca"))
            cek = self._csv_cert(cek_key, USAGE_CEK, 2, (1, 1), self.hsk_key.key_id,
                                 [(USAGE_HSK, self.hsk_key), (USAGE_INVALID, None)])
            pek = self._csv_cert(pek_key, USAGE_PEK, 1, (1, 3), bytes(16),
                                 [(USAGE_CEK, cek_key), (USAGE_OCA, oca_key)])
            self._chips[chip_id] = (cek, pek, pek_key, sm3(f"{self.seed}/sealing/{chip_id}".encode()))
        return self._chips[chip_id]

    def cek_cert(self, chip_id: str = DEFAULT_CHIP) -> bytes:
        return self._chip(chip_id)[0]

    def pek_cert(self, chip_id: str = DEFAULT_CHIP) -> bytes:
        return self._chip(chip_id)[1]

    def hsk_cek(self, chip_id: str = DEFAULT_CHIP) -> bytes:
        """The KDS download format for a forge chip: HSK (832) ‖ CEK (2084)."""
        return self.hsk_cert + self.cek_cert(chip_id)

    # -- reports ------------------------------------------------------------------------------------

    def report(self, version: int = 1, *, chip_id: str = DEFAULT_CHIP, user_data: bytes = b"forge user data",
               mnonce: bytes | None = None, measure: bytes | None = None, policy: int = 0x1,
               anonce: int | None = None, sealing_key: bytes | None = None, page: bool = False,
               user_pubkey_digest: bytes = bytes(32), vm_id: bytes | None = None, vm_version: bytes = bytes(16),
               build: int = 2339, rtmrs: tuple[bytes, ...] | None = None, host_data: bytes | None = None,
               pek: bytes | None = None) -> bytes:
        """A signed report as the firmware would return it (V1: 2548 bytes; V2/V3: 3380), or its page.

        ``sealing_key=None`` puts the chip's forge sealing key in place (so the MAC verifies); pass
        ``bytes(32)`` for a report whose field was blanked by a collector after the MAC check. ``pek``
        replaces the chip's PEK certificate (a test's edited copy); the report is still signed with the
        chip's PEK key.
        """
        if version not in (1, 2, 3):
            raise ValueError("version is 1, 2 or 3")
        if len(user_data) > 64:
            raise ValueError("user data is at most 64 bytes")
        tag = f"{self.seed}/{chip_id}/{user_data.hex()}".encode()
        mnonce = sm3(tag + b"/mnonce")[:16] if mnonce is None else mnonce
        measure = sm3(tag + b"/measure") if measure is None else measure
        vm_id = sm3(tag + b"/vm-id")[:16] if vm_id is None else vm_id
        _, chip_pek, pek_key, chip_sealing_key = self._chip(chip_id)
        pek = chip_pek if pek is None else pek
        if len(pek) != 2084:
            raise ValueError("pek is a 2084-byte CSV certificate")
        # The firmware MACs the block with the VM's real key; a collector may blank the field afterwards.
        firmware_key = chip_sealing_key if sealing_key is None or not any(sealing_key) else sealing_key
        sealing_key = firmware_key if sealing_key is None else sealing_key
        if len(mnonce) != 16 or len(measure) != 32 or len(sealing_key) != 32:
            raise ValueError("mnonce is 16 bytes, measure and sealing_key 32")
        sn = chip_id.encode().ljust(64, b"\0")
        tee = bytearray(user_pubkey_digest + vm_id + vm_version + user_data.ljust(64, b"\0") + mnonce + measure
                        + _le32(policy) + _le32(USAGE_PEK) + _le32(ALGO_SM2_SA))
        if version == 1:
            anonce = int.from_bytes(sm3(tag + b"/anonce")[:4], "little") | 1 if anonce is None else anonce
            clear = bytes(tee) + _le32(anonce) + bytes(144) + pek + sn + bytes(32)
            raw = bytearray(deobfuscate_v1(clear))  # XOR is its own inverse: this obfuscates
            lay = V1
        else:
            rtmrs = rtmrs if rtmrs is not None else (measure,) + tuple(sm3(tag + b"/rtmr%d" % i) for i in range(1, 5))
            tee += _le32(build) + (1).to_bytes(2, "little") + bytes(14) + b"".join(rtmrs)
            tee = tee.ljust(960, b"\0") + (host_data if version == 3 and host_data is not None else
                                           (sm3(tag + b"/host-data") * 2 if version == 3 else bytes(64)))
            raw = bytearray(bytes(tee) + bytes(144) + pek + sn + bytes(32))
            lay = EXT
        raw[lay.sig_offset:lay.sig_offset + 144] = self._signature(pek_key, bytes(raw[:lay.signed_end]))
        raw[lay.sealing_key_offset:lay.mac_offset] = firmware_key
        mac = hmac_sm3(mnonce, bytes(raw[lay.signer_offset:lay.mac_offset]))
        raw[lay.sealing_key_offset:lay.mac_offset] = sealing_key
        raw += mac
        assert len(raw) == (V1_SIZE if version == 1 else EXT_SIZE)
        return bytes(raw).ljust(PAGE_SIZE, b"\0") if page else bytes(raw)


    # -- evidence envelopes (shapes described in csvverify/evidence.py) ------------------------------

    def evidence(self, shape: str, version: int = 1, *, chip_id: str = DEFAULT_CHIP, with_certs: bool = True,
                 serial_number: str | None = None, **report_args) -> bytes:
        """Evidence as collectors ship it: shape "coco" (JSON wrapper), "legacy" (older serde JSON) or
        "rats-tls" (binary blob). The sealing-key field is blanked, as those collectors do."""
        from csvverify.evidence import CA_FIELDS, CSV_FIELDS, V1_BODY_FIELDS, cert_to_serde

        raw = bytearray(self.report(version, chip_id=chip_id, sealing_key=bytes(32), **report_args))
        serial = list((chip_id if serial_number is None else serial_number).encode().ljust(64, b"\0"))
        hsk_cek = self.hsk_cek(chip_id)
        pek_serde = cert_to_serde(self.pek_cert(chip_id), CSV_FIELDS)
        certs = {"hsk": cert_to_serde(hsk_cek[:832], CA_FIELDS), "cek": cert_to_serde(hsk_cek[832:], CSV_FIELDS)}
        if shape == "rats-tls":
            if version != 1:
                raise ValueError("rats-tls evidence carries V1 reports")
            return bytes(raw).ljust(PAGE_SIZE, b"\0") + hsk_cek + len(hsk_cek).to_bytes(4, "little")
        if shape == "coco":
            if version == 1:  # csv-rs de-obfuscates the PEK and chip id in place
                raw[336:2484] = deobfuscate_v1(bytes(raw))[336:2484]
            magic = list(b"ATTESTATION_EXT\0") if version > 1 else [0] * 16
            doc = {"attestation_report": {"magic": magic, "flags": {1: 0, 2: 1, 3: 3}[version],
                                          "data": list(bytes(raw).ljust(PAGE_SIZE, b"\0"))},
                   "cert_chain": {"pek": pek_serde, "hsk_cek": certs if with_certs else None},
                   "serial_number": serial, "cc_eventlog": None}
        elif shape == "legacy":
            if version != 1:
                raise ValueError("the legacy serde shape carries V1 reports")
            body, off = {}, 0
            for name, size in V1_BODY_FIELDS:
                body[name] = list(raw[off:off + size])
                off += size
            body["policy"] = int.from_bytes(raw[176:180], "little")
            report = {"body": body, "sig_usage": int.from_bytes(raw[180:184], "little"),
                      "sig_algo": int.from_bytes(raw[184:188], "little"),
                      "anonce": int.from_bytes(raw[188:192], "little"),
                      "sig": {"r": list(raw[192:264]), "s": list(raw[264:336])}}
            chain = {"pek": pek_serde, **(certs if with_certs else {})}
            doc = {"attestation_report": report, "cert_chain": chain, "serial_number": serial}
        else:
            raise ValueError("shape is coco, legacy or rats-tls")
        return json.dumps(doc).encode()


def write_samples(out: Path) -> list[Path]:
    """The bundled samples: a test root, its collateral and reports of each kind (see samples/README.md)."""
    forge = Forge()
    other = Forge(seed="csvverify-forge-other-root")
    out.mkdir(parents=True, exist_ok=True)
    good = forge.report(1, user_data=b"sample user data")
    tampered = bytearray(good)
    tampered[100] ^= 0x01  # inside report_data: covered by the report signature
    files = {
        "test-root.cert": forge.root_cert,
        "hsk_cek.cert": forge.hsk_cek(),
        "v1-good.cert": good,
        "v1-tampered.cert": bytes(tampered),
        "v1-blanked.cert": forge.report(1, user_data=b"sample user data", sealing_key=bytes(32)),
        "v2-page.bin": forge.report(2, user_data=b"sample user data", sealing_key=bytes(32), page=True),
        "v3-page.bin": forge.report(3, user_data=b"sample user data", sealing_key=bytes(32), page=True),
        "other-root/test-root.cert": other.root_cert,
        "other-root/hsk_cek.cert": other.hsk_cek(),
        "other-root/v1-good.cert": other.report(1, user_data=b"sample user data"),
    }
    written = []
    for name, data in files.items():
        path = out / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "samples")
    for p in write_samples(target):
        print(p)
