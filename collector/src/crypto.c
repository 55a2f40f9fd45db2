/* SM3, HMAC-SM3, SM2 verification with a distinguishing id (OpenSSL 3 libcrypto) and randomness. */
#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>

#include "csv_internal.h"

int csv_all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++)
        acc |= p[i];
    return acc == 0;
}

uint32_t csv_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void csv_le_to_be32(const uint8_t le[32], uint8_t be[32])
{
    for (int i = 0; i < 32; i++)
        be[i] = le[31 - i];
}

int csv_sm3_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sm3(), NULL) && EVP_DigestUpdate(ctx, a, alen)
             && (blen == 0 || EVP_DigestUpdate(ctx, b, blen)) && EVP_DigestFinal_ex(ctx, out, &n)
             && n == 32;
    EVP_MD_CTX_free(ctx);
    return ok ? CSV_OK : csv_fail(CSV_ERR_CRYPTO, "SM3 unavailable in libcrypto (OpenSSL 3 with SM3 is required)");
}

int csv_sm3(const void *data, size_t len, uint8_t out[32])
{
    return csv_sm3_2(data, len, NULL, 0, out);
}

int csv_hmac_sm3(const uint8_t *key, size_t key_len, const void *data, size_t len, uint8_t out[32])
{
    unsigned int n = 0;
    if (!HMAC(EVP_sm3(), key, (int)key_len, data, len, out, &n) || n != 32)
        return csv_fail(CSV_ERR_CRYPTO, "HMAC-SM3 unavailable in libcrypto");
    return CSV_OK;
}

int csv_random(void *buf, size_t len)
{
    size_t got = 0;
    while (got < len) {
        ssize_t n = getrandom((uint8_t *)buf + got, len - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return csv_fail(CSV_ERR_RANDOM, "getrandom() failed: %s", strerror(errno));
        got += (size_t)n;
    }
    return CSV_OK;
}

static EVP_PKEY *sm2_public_key(const struct csv_pubkey *key)
{
    uint8_t point[65];
    point[0] = 0x04;
    memcpy(point + 1, key->x, 32);
    memcpy(point + 33, key->y, 32);

    EVP_PKEY *pkey = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "SM2", NULL);
    if (bld && ctx && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "SM2", 0)
        && OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point))
        && (params = OSSL_PARAM_BLD_to_param(bld)) && EVP_PKEY_fromdata_init(ctx) > 0) {
        if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) <= 0)
            pkey = NULL;
    }
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pkey;
}

/* DER ECDSA-Sig-Value from the low 32 bytes of two 72-byte little-endian fields. */
static int signature_der(const uint8_t r_le72[72], const uint8_t s_le72[72], uint8_t **der, int *der_len)
{
    ECDSA_SIG *sig = ECDSA_SIG_new();
    BIGNUM *r = BN_lebin2bn(r_le72, 32, NULL);
    BIGNUM *s = BN_lebin2bn(s_le72, 32, NULL);
    if (!sig || !r || !s || !ECDSA_SIG_set0(sig, r, s)) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(sig);
        return 0;
    }
    *der = NULL;
    *der_len = i2d_ECDSA_SIG(sig, der);
    ECDSA_SIG_free(sig);
    return *der_len > 0;
}

int csv_sm2_verify(const struct csv_pubkey *key, const uint8_t *msg, size_t msg_len,
                   const uint8_t r_le72[72], const uint8_t s_le72[72])
{
    if (!csv_all_zero(r_le72 + 32, 40) || !csv_all_zero(s_le72 + 32, 40))
        return csv_fail(CSV_ERR_SIGNATURE, "non-zero padding in the high 40 bytes of the signature r/s fields");
    if (key->uid_len > sizeof(key->uid))
        return csv_fail(CSV_ERR_SIGNATURE, "signer uid longer than 254 bytes");

    EVP_PKEY *pkey = sm2_public_key(key);
    if (!pkey) {
        ERR_clear_error();
        return csv_fail(CSV_ERR_SIGNATURE, "signer public key is not a point on the SM2 curve");
    }

    uint8_t *der = NULL;
    int der_len = 0;
    int status = CSV_ERR_CRYPTO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    EVP_PKEY_CTX *pctx = NULL;
    if (!signature_der(r_le72, s_le72, &der, &der_len) || !md
        || EVP_DigestVerifyInit(md, &pctx, EVP_sm3(), NULL, pkey) <= 0
        || EVP_PKEY_CTX_set1_id(pctx, key->uid, key->uid_len) <= 0) {
        csv_fail(CSV_ERR_CRYPTO, "libcrypto cannot set up SM2/SM3 verification (OpenSSL 3 with SM2 is required)");
    } else if (EVP_DigestVerify(md, der, (size_t)der_len, msg, msg_len) == 1) {
        status = CSV_OK;
    } else {
        status = csv_fail(CSV_ERR_SIGNATURE, "SM2 signature does not verify");
    }
    OPENSSL_free(der);
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pkey);
    ERR_clear_error(); /* a failed verification is a result, not an error for the caller's queue */
    return status;
}
