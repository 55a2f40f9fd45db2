"""SM3, HMAC-SM3 and SHA-256 through `cryptography` (OpenSSL)."""

from cryptography.hazmat.primitives import hashes, hmac


def sm3(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SM3())
    h.update(data)
    return h.finalize()


def new_sm3() -> hashes.Hash:
    """An incremental SM3 context (``update`` / ``finalize``) for streaming."""
    return hashes.Hash(hashes.SM3())


def hmac_sm3(key: bytes, data: bytes) -> bytes:
    h = hmac.HMAC(key, hashes.SM3())
    h.update(data)
    return h.finalize()


def sha256(data: bytes) -> bytes:
    h = hashes.Hash(hashes.SHA256())
    h.update(data)
    return h.finalize()
