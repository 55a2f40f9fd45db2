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


_LAST_SHA256: tuple = (None, b"")  # (bytes object, its digest): an audit hashes each input twice in a row


def sha256(data: bytes) -> bytes:
    global _LAST_SHA256
    last = _LAST_SHA256
    if data is last[0]:  # the very same immutable bytes object (held here, so never another one at that id)
        return last[1]
    digest = hashlib.sha256(data).digest()
    if type(data) is bytes:
        _LAST_SHA256 = (data, digest)
    return digest
