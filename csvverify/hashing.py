"""SM3 and HMAC-SM3 through `cryptography`, SHA-256 through hashlib (both OpenSSL; hashlib's is the cheaper
call, which counts for the many short inputs of a batch)."""

import hashlib

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
    return hashlib.sha256(data).digest()
