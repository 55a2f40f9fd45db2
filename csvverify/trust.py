"""Trust roots: the pinned Hygon root key (HRK) and any extra root the user names explicitly.

The HRK is pinned by its public key and user id (facts from the real HRK certificate), so a byte-different
but equivalent encoding is judged on its key. A self-signed root that is not pinned is never trusted
unless the user passes it with --trust-root or imports it with `certs import --root`, and verdicts then say
which.
"""

from dataclasses import dataclass
from functools import cached_property

from csvverify import sm2
from csvverify.certs import CURVE_SM2, USAGE_HRK, RootCert, parse_root_cert
from csvverify.errors import InputError
from csvverify.hashing import sha256
from csvverify.sm2 import PublicKey

HRK_KEY = PublicKey(
    x=0xBE62E14D62A4F14CF3D702DB09563A75C80935E785CD1F502AF5F21D92C2F62D,
    y=0x3BAB123A57BB7015584F8B97164E95384A640C10B9BE884738744D68B41EB946,
)
HRK_UID = b"HYGON-SSD-HRK"
HRK_KEY_ID = bytes.fromhex("3ae86a9701355cce333a589de21583d7")
HRK_FILE_SHA256 = "296efa97580464aca0ab5eefe42199ee05862182508d1629f29cf4dc175b10cd"


def key_fingerprint(key: PublicKey, uid: bytes, what: str = "the certificate") -> str:
    """SHA-256 over x ‖ y (32-byte big-endian each) ‖ user id: names a key independently of its encoding.

    A coordinate wider than 32 bytes (non-zero padding in its 72-byte field) names no SM2 key: that is an
    InputError, not a fingerprint of something else."""
    wide = [name for name, v in (("qx", key.x), ("qy", key.y)) if v >> 256]
    if wide:
        raise InputError(f"{what}: {' and '.join(wide)} {'is' if len(wide) == 1 else 'are'} wider than 32 bytes "
                         "(non-zero padding in the 72-byte key field): not an SM2 public key",
                         hint="the certificate is damaged or forged; the padding lies outside every signature")
    return sha256(key.x.to_bytes(32, "big") + key.y.to_bytes(32, "big") + uid).hex()


@dataclass(frozen=True)
class TrustedRoot:
    key_id: bytes
    key: PublicKey
    uid: bytes
    pinned: bool
    source: str  # "pinned" or where it came from (a --trust-root file, or a trust store entry's source)
    imported_at: str | None = None  # set for a root imported into the trust store (`certs import --root`)

    @cached_property  # a SHA-256, asked for in every verdict
    def fingerprint(self) -> str:
        return key_fingerprint(self.key, self.uid)

    def describe(self) -> str:
        if self.pinned:
            return f"the pinned Hygon root key (key id {self.key_id.hex()})"
        if self.imported_at is not None:
            return (f"the extra root (key id {self.key_id.hex()}) imported into the trust store from {self.source} "
                    f"on {self.imported_at} (`certs import --root`)")
        return f"the extra root from {self.source} (key id {self.key_id.hex()}), trusted only because --trust-root named it"

    def to_dict(self) -> dict:
        out = {"kind": "pinned" if self.pinned else "extra", "key_id": self.key_id.hex(),
               "fingerprint": self.fingerprint, "source": self.source}
        if self.imported_at is not None:
            out["imported_at"] = self.imported_at
        return out


PINNED_HRK = TrustedRoot(HRK_KEY_ID, HRK_KEY, HRK_UID, pinned=True, source="pinned")


def is_pinned(cert: RootCert) -> bool:
    return cert.key == HRK_KEY and cert.uid == HRK_UID


def self_signed_root_problems(cert: RootCert) -> list[str]:
    """Why a root certificate is not a well-formed self-signed SM2 root (empty when it is)."""
    problems = []
    if cert.key_usage != USAGE_HRK:
        problems.append(f"key_usage is {cert.key_usage:#06x}, not {USAGE_HRK:#06x} (HRK)")
    if cert.curve_id != CURVE_SM2:
        problems.append(f"curve_id is {cert.curve_id}, not {CURVE_SM2} (SM2)")
    if cert.key_id != cert.certifying_id:
        problems.append("key_id differs from certifying_id (not self-issued)")
    problems.extend(cert.padding_faults + cert.signature.padding_faults)
    try:
        sm2.check(cert.key, cert.uid, cert.signed_bytes, cert.signature.r, cert.signature.s)
    except sm2.SignatureError as exc:
        problems.append(f"self-signature does not verify: {exc}")
    return problems


@dataclass(frozen=True)
class TrustRoots:
    roots: tuple[TrustedRoot, ...] = (PINNED_HRK,)

    def for_key_id(self, key_id: bytes) -> TrustedRoot | None:
        return next((r for r in self.roots if r.key_id == key_id), None)

    def with_extra(self, raw: bytes, source: str, imported_at: str | None = None) -> "TrustRoots":
        """Add a root given explicitly (``imported_at`` when it comes from the trust store); it must be a valid
        self-signed root certificate."""
        cert = parse_root_cert(raw, source)
        problems = self_signed_root_problems(cert)
        if problems:
            raise InputError(f"{source}: not usable as a trust root: " + "; ".join(problems),
                             hint="--trust-root takes an 832-byte self-signed root certificate")
        root = TrustedRoot(cert.key_id, cert.key, cert.uid, pinned=is_pinned(cert) and cert.key_id == HRK_KEY_ID,
                           source=source, imported_at=imported_at)
        if root.pinned or any(r.key_id == root.key_id and r.key == root.key for r in self.roots):
            return self
        clash = self.for_key_id(root.key_id)
        if clash is not None:
            raise InputError(f"{source}: root key id {root.key_id.hex()} is already used by {clash.describe()} "
                             f"with a different key", hint="a root may not impersonate another root's key id")
        return TrustRoots(self.roots + (root,))

    def to_list(self) -> list[dict]:
        return [r.to_dict() for r in self.roots]
