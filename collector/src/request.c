/* The request the guest sends, and the checks it makes on the firmware's answer. */
#include <string.h>

#include "csv_internal.h"

const struct csv_layout csv_layout_v1 = {
    .version = 1, .len = CSV_REPORT_V1_LEN, .signed_len = CSV_V1_SIGNED_LEN,
    .sig_off = CSV_V1_SIG_OFF, .pek_off = CSV_V1_PEK_OFF, .sn_off = CSV_V1_SN_OFF,
    .key_off = CSV_V1_KEY_OFF, .mac_off = CSV_V1_MAC_OFF,
};

const struct csv_layout csv_layout_ext = {
    .version = 2, .len = CSV_REPORT_EXT_LEN, .signed_len = CSV_EXT_SIGNED_LEN,
    .sig_off = CSV_EXT_SIG_OFF, .pek_off = CSV_EXT_PEK_OFF, .sn_off = CSV_EXT_SN_OFF,
    .key_off = CSV_EXT_KEY_OFF, .mac_off = CSV_EXT_MAC_OFF,
};

static const char ext_magic[16] = "ATTESTATION_EXT"; /* with its NUL: 16 bytes */

int csv_build_request(uint8_t page[CSV_PAGE_LEN], const uint8_t *user_data, size_t user_data_len,
                      const uint8_t mnonce[CSV_MNONCE_LEN], unsigned ext_flags)
{
    if (user_data_len > CSV_USER_DATA_LEN)
        return csv_fail(CSV_ERR_INVALID_ARGUMENT,
                        "user data is %zu bytes; at most 64 fit in a report (hash longer data first)",
                        user_data_len);
    if (ext_flags != CSV_EXT_NONE && ext_flags != CSV_EXT_V2 && ext_flags != CSV_EXT_V3)
        return csv_fail(CSV_ERR_INVALID_ARGUMENT, "extended-report flags %u unknown; use 0, 1 (V2) or 3 (V3)",
                        ext_flags);
    memset(page, 0, CSV_PAGE_LEN);
    if (user_data_len)
        memcpy(page, user_data, user_data_len);
    memcpy(page + CSV_USER_DATA_LEN, mnonce, CSV_MNONCE_LEN);
    int status = csv_sm3(page, CSV_USER_DATA_LEN + CSV_MNONCE_LEN, page + CSV_USER_DATA_LEN + CSV_MNONCE_LEN);
    if (status != CSV_OK)
        return status;
    if (ext_flags != CSV_EXT_NONE) {
        memcpy(page + CSV_REQUEST_LEN, ext_magic, sizeof(ext_magic));
        page[CSV_REQUEST_LEN + 16] = (uint8_t)ext_flags; /* u32 LE; flags fit in one byte */
    }
    return CSV_OK;
}

static uint32_t anonce_of(const uint8_t *raw, const struct csv_layout *layout)
{
    return layout->version == 1 ? csv_le32(raw + CSV_V1_ANONCE_OFF) : 0;
}

/* Obfuscated byte i in clear: the anonce pattern is aligned to offset 0 of the report. */
static uint8_t clear_byte(const uint8_t *raw, size_t i, uint32_t anonce)
{
    return raw[i] ^ (uint8_t)(anonce >> (8 * (i % 4)));
}

static void xor_range(const uint8_t *raw, uint8_t *clear, size_t from, size_t to, uint32_t anonce)
{
    for (size_t i = from; i < to; i++)
        clear[i] = clear_byte(raw, i, anonce);
}

/* The PEK's (pubkey_usage, algo, curve) words at cert_off + 8, each XORed with `mask`. */
static int pek_words_at(const uint8_t *buf, size_t cert_off, uint32_t mask)
{
    return (csv_le32(buf + cert_off + 8) ^ mask) == CSV_USAGE_PEK
           && (csv_le32(buf + cert_off + 12) ^ mask) == CSV_ALGO_SM2_SA
           && (csv_le32(buf + cert_off + 16) ^ mask) == CSV_CURVE_SM2;
}

int csv_v1_signer_clear(const uint8_t *raw)
{
    uint32_t anonce = csv_le32(raw + CSV_V1_ANONCE_OFF);
    return anonce && !pek_words_at(raw, CSV_V1_PEK_OFF, anonce) && pek_words_at(raw, CSV_V1_PEK_OFF, 0);
}

void csv_deobfuscate(const uint8_t *raw, const struct csv_layout *layout, uint8_t *clear)
{
    uint32_t anonce = anonce_of(raw, layout);
    memcpy(clear, raw, layout->len);
    if (layout->version == 1) {
        xor_range(raw, clear, 0, CSV_V1_ANONCE_OFF, anonce);
        if (!csv_v1_signer_clear(raw))
            xor_range(raw, clear, CSV_V1_PEK_OFF, CSV_V1_KEY_OFF, anonce);
    }
}

void csv_signer_block_as_stored(const uint8_t *raw, const struct csv_layout *layout, uint8_t *out)
{
    size_t n = layout->mac_off - layout->pek_off;
    memcpy(out, raw + layout->pek_off, n);
    if (layout->version == 1 && csv_v1_signer_clear(raw)) {
        /* XOR is its own inverse: this re-obfuscates [336, 2484) */
        uint32_t anonce = anonce_of(raw, layout);
        for (size_t i = CSV_V1_PEK_OFF; i < CSV_V1_KEY_OFF; i++)
            out[i - CSV_V1_PEK_OFF] = clear_byte(raw, i, anonce);
    }
}

static int mnonce_echoed(const uint8_t *raw, const struct csv_layout *layout, const uint8_t mnonce[16])
{
    uint32_t anonce = anonce_of(raw, layout);
    uint8_t diff = 0;
    for (size_t i = 0; i < CSV_MNONCE_LEN; i++)
        diff |= clear_byte(raw, CSV_OFF_MNONCE + i, anonce) ^ mnonce[i];
    return diff == 0;
}

static int mac_matches(const uint8_t *raw, const struct csv_layout *layout, const uint8_t mnonce[16], int *match)
{
    uint8_t mac[32];
    int status = csv_hmac_sm3(mnonce, CSV_MNONCE_LEN, raw + layout->pek_off, layout->mac_off - layout->pek_off, mac);
    *match = status == CSV_OK && memcmp(mac, raw + layout->mac_off, sizeof(mac)) == 0;
    return status;
}

int csv_check_response(const uint8_t *page, size_t len, const uint8_t mnonce[CSV_MNONCE_LEN],
                       int allow_ext, const struct csv_layout **layout)
{
    const struct csv_layout *candidates[2] = {allow_ext ? &csv_layout_ext : &csv_layout_v1,
                                              allow_ext ? &csv_layout_v1 : NULL};
    int echoed = 0;
    for (int i = 0; i < 2 && candidates[i]; i++) {
        const struct csv_layout *l = candidates[i];
        if (len < l->len || !mnonce_echoed(page, l, mnonce))
            continue;
        echoed = 1;
        int match = 0;
        int status = mac_matches(page, l, mnonce, &match);
        if (status != CSV_OK)
            return status;
        if (match) {
            *layout = l;
            return CSV_OK;
        }
    }
    if (!echoed)
        return csv_fail(CSV_ERR_MNONCE_MISMATCH,
                        "the report does not echo the mnonce that was sent: stale or substituted response, discarded");
    return csv_fail(CSV_ERR_MAC_MISMATCH,
                    "the report's MAC does not match HMAC-SM3(mnonce, signer block): corrupted response, discarded");
}

void csv_blank_sealing_key(uint8_t *report, const struct csv_layout *layout)
{
    memset(report + layout->key_off, 0, CSV_SEALING_KEY_LEN);
}

/* A page holds a report of this layout: its PEK where the layout puts it (V1: obfuscated, or
 * already de-obfuscated as in CoCo evidence) and only zeros after the report. */
static int page_holds(const uint8_t *page, const struct csv_layout *l)
{
    int pek = l->version == 1 ? pek_words_at(page, l->pek_off, csv_le32(page + CSV_V1_ANONCE_OFF))
                                    || pek_words_at(page, l->pek_off, 0)
                              : pek_words_at(page, l->pek_off, 0);
    return pek && csv_all_zero(page + l->len, CSV_PAGE_LEN - l->len);
}

int csv_probe_layout(const uint8_t *buf, size_t len, const struct csv_layout **layout)
{
    *layout = NULL;
    if (len == CSV_REPORT_V1_LEN)
        *layout = &csv_layout_v1;
    else if (len == CSV_REPORT_EXT_LEN)
        *layout = &csv_layout_ext;
    if (*layout)
        return CSV_OK;
    if (len != CSV_PAGE_LEN)
        return csv_fail(CSV_ERR_REPORT_FORMAT,
                        "%zu bytes is not a raw report (2548 bytes V1, 3380 bytes V2/V3 or a 4096-byte page)", len);
    /* A page carries no version tag (report-format.md §6.1): the same probe as csvverify's. */
    int v1 = page_holds(buf, &csv_layout_v1), ext = page_holds(buf, &csv_layout_ext);
    if (v1 && ext)
        return csv_fail(CSV_ERR_REPORT_FORMAT,
                        "the 4096-byte page reads both as V1 and as V2/V3; cut it to the report (head -c 2548 "
                        "for V1, head -c 3380 for V2/V3) or use csvverify verify --report-version");
    if (!v1 && !ext)
        return csv_fail(CSV_ERR_REPORT_FORMAT,
                        "4096-byte page with no PEK certificate at offset 336 (V1) or 1168 (V2/V3) and zero "
                        "padding after it: not a CSV report page");
    *layout = v1 ? &csv_layout_v1 : &csv_layout_ext;
    return CSV_OK;
}
