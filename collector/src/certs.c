/* HRK/HSK (832-byte) and CEK/PEK (2084-byte) certificates: parsing, structure and signature checks. */
#include <string.h>

#include "csv_internal.h"

/* report-format.md §11: the Hygon root key, pinned by value (key_id, public key and user id). */
const uint8_t csv_hrk_key_id[16] = {0x3a, 0xe8, 0x6a, 0x97, 0x01, 0x35, 0x5c, 0xce,
                                    0x33, 0x3a, 0x58, 0x9d, 0xe2, 0x15, 0x83, 0xd7};
const struct csv_pubkey csv_hrk_pubkey = {
    .x = {0xbe, 0x62, 0xe1, 0x4d, 0x62, 0xa4, 0xf1, 0x4c, 0xf3, 0xd7, 0x02, 0xdb, 0x09, 0x56, 0x3a, 0x75,
          0xc8, 0x09, 0x35, 0xe7, 0x85, 0xcd, 0x1f, 0x50, 0x2a, 0xf5, 0xf2, 0x1d, 0x92, 0xc2, 0xf6, 0x2d},
    .y = {0x3b, 0xab, 0x12, 0x3a, 0x57, 0xbb, 0x70, 0x15, 0x58, 0x4f, 0x8b, 0x97, 0x16, 0x4e, 0x95, 0x38,
          0x4a, 0x64, 0x0c, 0x10, 0xb9, 0xbe, 0x88, 0x47, 0x38, 0x74, 0x4d, 0x68, 0xb4, 0x1e, 0xb9, 0x46},
    .uid = "HYGON-SSD-HRK",
    .uid_len = 13,
};

#define ROOT_SIGNED_LEN 576
#define CERT_SIGNED_LEN 1044
#define FIELD72 72

/* A public key stored as two 72-byte little-endian coordinates plus a u16 uid length and the uid. */
static int parse_pubkey(const uint8_t *qx, const uint8_t *qy, const uint8_t *uid_len_le, const uint8_t *uid,
                        struct csv_pubkey *key, const char *what)
{
    if (!csv_all_zero(qx + 32, 40) || !csv_all_zero(qy + 32, 40))
        return csv_fail(CSV_ERR_SIGNATURE, "%s: non-zero padding in the high 40 bytes of the public key", what);
    size_t uid_len = (size_t)uid_len_le[0] | (size_t)uid_len_le[1] << 8;
    if (uid_len > sizeof(key->uid))
        return csv_fail(CSV_ERR_SIGNATURE, "%s: uid_len %zu exceeds 254", what, uid_len);
    csv_le_to_be32(qx, key->x);
    csv_le_to_be32(qy, key->y);
    memcpy(key->uid, uid, uid_len);
    key->uid_len = uid_len;
    return CSV_OK;
}

int csv_parse_root_cert(const uint8_t raw[CSV_ROOT_CERT_LEN], struct csv_root_cert *out)
{
    memset(out, 0, sizeof(*out));
    out->raw = raw;
    memcpy(out->key_id, raw + 4, 16);
    memcpy(out->certifying_id, raw + 20, 16);
    out->key_usage = csv_le32(raw + 36);
    out->curve_id = csv_le32(raw + 64);
    if (out->curve_id != CSV_CURVE_SM2)
        return csv_fail(CSV_ERR_SIGNATURE, "curve id %u is not SM2 (3)", out->curve_id);
    return parse_pubkey(raw + 68, raw + 140, raw + 212, raw + 214, &out->key, "certificate");
}

int csv_parse_cert(const uint8_t raw[CSV_CERT_LEN], struct csv_cert *out)
{
    memset(out, 0, sizeof(*out));
    out->raw = raw;
    out->version = csv_le32(raw);
    out->pubkey_usage = csv_le32(raw + 8);
    out->pubkey_algo = csv_le32(raw + 12);
    out->curve_id = csv_le32(raw + 16);
    memcpy(out->certifying_id, raw + 420, 16);
    if (out->pubkey_algo != CSV_ALGO_SM2_SA || out->curve_id != CSV_CURVE_SM2)
        return csv_fail(CSV_ERR_SIGNATURE, "key algorithm %u / curve %u is not SM2 (4 / 3)", out->pubkey_algo,
                        out->curve_id);
    return parse_pubkey(raw + 20, raw + 92, raw + 164, raw + 166, &out->key, "certificate");
}

int csv_verify_root_cert_sig(const struct csv_root_cert *cert, const struct csv_pubkey *signer)
{
    return csv_sm2_verify(signer, cert->raw, ROOT_SIGNED_LEN, cert->raw + ROOT_SIGNED_LEN,
                          cert->raw + ROOT_SIGNED_LEN + FIELD72);
}

int csv_verify_cert_sig(const struct csv_cert *cert, uint32_t sig_usage, const struct csv_pubkey *signer)
{
    static const size_t slots[2] = {1044, 1564};
    int tried = 0;
    for (int i = 0; i < 2; i++) {
        const uint8_t *slot = cert->raw + slots[i];
        if (csv_le32(slot) != sig_usage || csv_le32(slot + 4) != CSV_ALGO_SM2_SA)
            continue;
        tried = 1;
        int status = csv_sm2_verify(signer, cert->raw, CERT_SIGNED_LEN, slot + 8, slot + 8 + FIELD72);
        if (status != CSV_ERR_SIGNATURE)
            return status;
    }
    if (!tried)
        return csv_fail(CSV_ERR_SIGNATURE, "no signature slot with usage 0x%x and algorithm SM2", sig_usage);
    return csv_fail(CSV_ERR_SIGNATURE, "the signature in the slot with usage 0x%x does not verify", sig_usage);
}
