/* Offline report verification: pinned HRK -> HSK -> CEK -> PEK -> report, MAC, expected values. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv_internal.h"

struct run {
    struct csv_verify_result *res;
    int worst;
};

/* Which failure wins, as in the Python verifier: a forged report outranks a mismatch, a mismatch
 * outranks an input that could not be judged, and that outranks missing collateral. */
static int rank(int code)
{
    switch (code) {
    case CSV_OK: return 0;
    case CSV_ERR_COLLATERAL: return 1;
    case CSV_ERR_REPORT_FORMAT: return 2;
    case CSV_ERR_EXPECTATION: return 3;
    default: return 4; /* signature, chain, untrusted root, crypto */
    }
}

static void add(struct run *r, const char *id, int status, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add(struct run *r, const char *id, int status, int code, const char *fmt, ...)
{
    if (status == CSV_CHECK_FAIL && rank(code) > rank(r->worst))
        r->worst = code;
    if (r->res->n_checks >= CSV_MAX_CHECKS)
        return;
    struct csv_check *c = &r->res->checks[r->res->n_checks++];
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->status = status;
    c->code = status == CSV_CHECK_FAIL ? code : CSV_OK;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->reason, sizeof(c->reason), fmt, ap);
    va_end(ap);
}

/* Record a check from a status code: pass with `ok_text`, or fail with csv_last_error(). */
static int record(struct run *r, const char *id, int status, const char *ok_text)
{
    if (status == CSV_OK)
        add(r, id, CSV_CHECK_PASS, CSV_OK, "%s", ok_text);
    else
        add(r, id, CSV_CHECK_FAIL, status, "%s", csv_last_error());
    return status;
}

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void decode_chip_id(const uint8_t *sn, char out[65])
{
    size_t i = 0;
    for (; i < CSV_SN_LEN && sn[i]; i++)
        out[i] = (sn[i] >= 0x20 && sn[i] < 0x7f) ? (char)sn[i] : '?';
    out[i] = '\0';
}

static void check_pek_chain(struct run *r, const struct csv_verify_params *p, const struct csv_cert *pek)
{
    struct csv_verify_result *res = r->res;
    if (!p->verify_chain) {
        add(r, "chain", CSV_CHECK_SKIP, CSV_OK,
            "not checked: without HSK/CEK the report is only self-consistent, not anchored to Hygon");
        return;
    }
    if (!p->hsk || p->hsk_len != CSV_ROOT_CERT_LEN || !p->cek || p->cek_len != CSV_CERT_LEN) {
        add(r, "chain.collateral", CSV_CHECK_FAIL, CSV_ERR_COLLATERAL,
            "HSK (832 bytes) and CEK (2084 bytes) for chip %s are needed; fetch hsk_cek.cert from "
            "https://cert.hygon.cn/hsk_cek?snumber=%s", res->chip_id, res->chip_id);
        return;
    }

    struct csv_root_cert hsk, extra;
    char id_hex[33];
    int st = csv_parse_root_cert(p->hsk, &hsk);
    if (st == CSV_OK && hsk.key_usage != CSV_USAGE_HSK)
        st = csv_fail(CSV_ERR_SIGNATURE, "HSK key usage 0x%x is not 0x13", hsk.key_usage);
    if (record(r, "chain.hsk.format", st, "HSK structure and usage are valid") != CSV_OK)
        return;

    const struct csv_pubkey *root = NULL;
    int anchor = 0;
    hex(hsk.certifying_id, 16, id_hex);
    if (memcmp(hsk.certifying_id, csv_hrk_key_id, 16) == 0) {
        root = &csv_hrk_pubkey;
        anchor = 1;
        add(r, "chain.root", CSV_CHECK_PASS, CSV_OK, "HSK issued by the pinned Hygon root key (key_id %s)", id_hex);
    } else if (p->trust_root && csv_parse_root_cert(p->trust_root, &extra) == CSV_OK
               && memcmp(hsk.certifying_id, extra.key_id, 16) == 0) {
        root = &extra.key;
        anchor = 2;
        add(r, "chain.root", CSV_CHECK_WARN, CSV_OK,
            "anchored to the EXPLICIT trust root (key_id %s), NOT the Hygon root: valid only if you trust that key",
            id_hex);
    } else {
        add(r, "chain.root", CSV_CHECK_FAIL, CSV_ERR_UNTRUSTED_ROOT,
            "HSK issued by key_id %s: neither the pinned Hygon root nor a root given with --trust-root", id_hex);
        return;
    }
    if (record(r, "chain.hsk", csv_verify_root_cert_sig(&hsk, root), "HSK signed by the root") != CSV_OK)
        return;

    struct csv_cert cek;
    st = csv_parse_cert(p->cek, &cek);
    if (st == CSV_OK && cek.pubkey_usage != CSV_USAGE_CEK)
        st = csv_fail(CSV_ERR_SIGNATURE, "CEK key usage 0x%x is not 0x1004", cek.pubkey_usage);
    if (record(r, "chain.cek.format", st, "CEK structure and usage are valid") != CSV_OK)
        return;
    if (memcmp(cek.certifying_id, hsk.key_id, 16) != 0) {
        add(r, "chain.cek.issuer", CSV_CHECK_FAIL, CSV_ERR_SIGNATURE, "CEK certifying id is not the HSK key_id");
        return;
    }
    if (record(r, "chain.cek", csv_verify_cert_sig(&cek, CSV_USAGE_HSK, &hsk.key), "CEK signed by the HSK") != CSV_OK)
        return;
    if (record(r, "chain.pek", csv_verify_cert_sig(pek, CSV_USAGE_CEK, &cek.key), "PEK signed by the CEK of this chip")
        == CSV_OK)
        res->anchored_to = anchor;
}

static void check_mac(struct run *r, const uint8_t *raw, const struct csv_layout *l, const uint8_t *mnonce)
{
    const uint8_t *field = raw + l->key_off;
    if (csv_all_zero(field, CSV_SEALING_KEY_LEN)) {
        add(r, "report.mac", CSV_CHECK_SKIP, CSV_OK,
            "not checkable: the sealing-key field is blanked (expected for a correctly collected report)");
        return;
    }
    uint8_t mac[32], signer[CSV_EXT_MAC_OFF - CSV_EXT_PEK_OFF];
    csv_signer_block_as_stored(raw, l, signer);
    int st = csv_hmac_sm3(mnonce, CSV_MNONCE_LEN, signer, l->mac_off - l->pek_off, mac);
    if (st == CSV_OK && memcmp(mac, raw + l->mac_off, 32) != 0)
        st = csv_fail(CSV_ERR_SIGNATURE, "MAC over the signer block does not match (PEK, chip id or MAC damaged)");
    record(r, "report.mac", st, "MAC over the signer block matches");
    add(r, "report.sealing_key", CSV_CHECK_WARN, CSV_OK,
        "the sealing-key field is non-zero: this report carries the VM's sealing key (leaked; rotate what it protects)");
}

static void expect(struct run *r, const char *id, const uint8_t *want, const uint8_t *got, size_t n)
{
    char want_hex[129], got_hex[129];
    if (!want)
        return;
    if (memcmp(want, got, n) == 0) {
        add(r, id, CSV_CHECK_PASS, CSV_OK, "matches the expected value");
        return;
    }
    hex(want, n, want_hex);
    hex(got, n, got_hex);
    add(r, id, CSV_CHECK_FAIL, CSV_ERR_EXPECTATION, "report has %.64s%s, expected %.64s%s", got_hex,
        n > 32 ? "..." : "", want_hex, n > 32 ? "..." : "");
}

static void check_expectations(struct run *r, const struct csv_verify_params *p)
{
    uint8_t want_data[CSV_USER_DATA_LEN] = {0};
    if (p->expect_user_data) {
        if (p->expect_user_data_len > CSV_USER_DATA_LEN) {
            add(r, "expect.user_data", CSV_CHECK_FAIL, CSV_ERR_EXPECTATION,
                "expected user data is %u bytes; a report holds 64", p->expect_user_data_len);
        } else {
            memcpy(want_data, p->expect_user_data, p->expect_user_data_len);
            expect(r, "expect.user_data", want_data, r->res->report_data, CSV_USER_DATA_LEN);
        }
    }
    expect(r, "expect.mnonce", p->expect_mnonce, r->res->mnonce, CSV_MNONCE_LEN);
    expect(r, "expect.measure", p->expect_measure, r->res->measure, 32);
    if (!p->expect_user_data && !p->expect_mnonce && !p->expect_measure)
        add(r, "expect", CSV_CHECK_WARN, CSV_OK,
            "no expected user data, mnonce or measure given: nothing ties this report to your challenge or your image%s",
            r->res->version == 1 ? " (in V1 a changed anonce shifts every decoded field unnoticed)" : "");
}

int csv_check_trust_root(const unsigned char *raw, unsigned int len)
{
    struct csv_root_cert root;
    if (!raw || len != CSV_ROOT_CERT_LEN)
        return csv_fail(CSV_ERR_COLLATERAL, "a trust root is an 832-byte self-signed root certificate, not %u bytes", len);
    int st = csv_parse_root_cert(raw, &root);
    if (st == CSV_OK && (root.key_usage != CSV_USAGE_HRK || memcmp(root.key_id, root.certifying_id, 16) != 0))
        st = csv_fail(CSV_ERR_SIGNATURE, "usage 0x%x or issuer id: not a self-issued root key", root.key_usage);
    if (st == CSV_OK)
        st = csv_verify_root_cert_sig(&root, &root.key);
    if (st == CSV_OK && memcmp(root.key_id, csv_hrk_key_id, 16) == 0
        && memcmp(&root.key, &csv_hrk_pubkey, sizeof(root.key)) != 0)
        st = csv_fail(CSV_ERR_SIGNATURE, "it claims the Hygon root's key id with a different key");
    if (st != CSV_OK)
        return csv_fail(CSV_ERR_COLLATERAL, "not usable as a trust root: %s", csv_last_error());
    return CSV_OK;
}

static void verify(struct run *r, const uint8_t *buf, size_t len, const struct csv_verify_params *p)
{
    struct csv_verify_result *res = r->res;
    if (p->trust_root && record(r, "chain.trust_root", csv_check_trust_root(p->trust_root, p->trust_root_len),
                                "explicit trust root is a valid self-signed root") != CSV_OK)
        return;
    const struct csv_layout *l = NULL;
    if (!buf || csv_probe_layout(buf, len, &l) != CSV_OK) {
        add(r, "report.format", CSV_CHECK_FAIL, CSV_ERR_REPORT_FORMAT, "%s",
            buf ? csv_last_error() : "no report: the buffer is NULL");
        return;
    }
    uint8_t clear[CSV_REPORT_EXT_LEN];
    csv_deobfuscate(buf, l, clear);
    res->version = l->version;
    if (l->version == 1 && csv_v1_signer_clear(buf))
        add(r, "report.signer_block", CSV_CHECK_WARN, CSV_OK,
            "the PEK and chip id were already de-obfuscated by the collector (CoCo evidence shape); "
            "re-obfuscated for the MAC");
    memcpy(res->report_data, clear + CSV_OFF_REPORT_DATA, CSV_USER_DATA_LEN);
    memcpy(res->mnonce, clear + CSV_OFF_MNONCE, CSV_MNONCE_LEN);
    memcpy(res->measure, clear + CSV_OFF_MEASURE, 32);
    res->policy = csv_le32(clear + CSV_OFF_POLICY);
    decode_chip_id(clear + l->sn_off, res->chip_id);

    uint32_t usage = csv_le32(clear + CSV_OFF_SIG_USAGE), algo = csv_le32(clear + CSV_OFF_SIG_ALGO);
    if (usage != CSV_USAGE_PEK || algo != CSV_ALGO_SM2_SA)
        add(r, "report.fields", CSV_CHECK_FAIL, CSV_ERR_SIGNATURE,
            "report signature usage/algorithm 0x%x/%u, expected 0x1002/4 (PEK, SM2)", usage, algo);

    struct csv_cert pek;
    int st = csv_parse_cert(clear + l->pek_off, &pek);
    if (st == CSV_OK && pek.pubkey_usage != CSV_USAGE_PEK)
        st = csv_fail(CSV_ERR_SIGNATURE, "PEK key usage 0x%x is not 0x1002", pek.pubkey_usage);
    if (record(r, "pek.format", st, "PEK structure is valid") == CSV_OK) {
        record(r, "report.signature",
               csv_sm2_verify(&pek.key, buf, l->signed_len, buf + l->sig_off, buf + l->sig_off + 72),
               "report signed by the PEK it carries");
        check_pek_chain(r, p, &pek);
    }
    check_mac(r, buf, l, res->mnonce);
    check_expectations(r, p);
}

int verify_attestation_report_ex(const unsigned char *report_buf, unsigned int buf_len,
                                 const struct csv_verify_params *params, struct csv_verify_result *result)
{
    struct csv_verify_result local;
    struct csv_verify_params none = {0};
    struct run r = {.res = result ? result : &local, .worst = CSV_OK};
    memset(r.res, 0, sizeof(*r.res));
    verify(&r, report_buf, buf_len, params ? params : &none);
    if (r.worst == CSV_OK)
        return CSV_OK;
    for (unsigned i = 0; i < r.res->n_checks; i++)
        if (r.res->checks[i].status == CSV_CHECK_FAIL && r.res->checks[i].code == r.worst)
            return csv_fail(r.worst, "%s: %s", r.res->checks[i].id, r.res->checks[i].reason);
    return r.worst;
}

/* The devkit's local certificate places (no download: this SDK never touches the network). */
static int load_hsk_cek(const char *chip, uint8_t out[CSV_HSK_CEK_LEN])
{
    /* The chip id is an unsigned claim inside the report: never let it steer a path elsewhere. */
    if (!chip[0] || strspn(chip, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") != strlen(chip))
        return csv_fail(CSV_ERR_COLLATERAL, "chip id \"%s\" is not a plain serial number; pass HSK/CEK explicitly", chip);
    char paths[4][160];
    snprintf(paths[0], sizeof(paths[0]), "./%s_hsk_cek.cert", chip);
    snprintf(paths[1], sizeof(paths[1]), "./hsk_cek.cert");
    snprintf(paths[2], sizeof(paths[2]), "/opt/hygon/csv/hsk_cek/%s/hsk_cek.cert", chip);
    snprintf(paths[3], sizeof(paths[3]), "/opt/csv/hsk_cek/%s/hsk_cek.cert", chip);
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(paths[i], "rb");
        if (!f)
            continue;
        size_t n = fread(out, 1, CSV_HSK_CEK_LEN, f);
        int extra = fgetc(f) != EOF;
        fclose(f);
        if (n == CSV_HSK_CEK_LEN && !extra)
            return CSV_OK;
        return csv_fail(CSV_ERR_COLLATERAL, "%s is not a 2916-byte hsk_cek.cert", paths[i]);
    }
    return csv_fail(CSV_ERR_COLLATERAL, "no hsk_cek.cert for chip %s in ./, /opt/hygon/csv/hsk_cek/%s/ or "
                    "/opt/csv/hsk_cek/%s/", chip, chip, chip);
}

int verify_attestation_report(unsigned char *report_buf, unsigned int buf_len, int verify_chain)
{
    struct csv_verify_params p = {.verify_chain = verify_chain != 0};
    uint8_t hsk_cek[CSV_HSK_CEK_LEN];
    if (verify_chain) {
        const struct csv_layout *l = NULL;
        if (!report_buf)
            return csv_fail(CSV_ERR_REPORT_FORMAT, "no report: the buffer is NULL");
        if (csv_probe_layout(report_buf, buf_len, &l) != CSV_OK)
            return CSV_ERR_REPORT_FORMAT;
        uint8_t clear[CSV_REPORT_EXT_LEN];
        char chip[65];
        csv_deobfuscate(report_buf, l, clear);
        decode_chip_id(clear + l->sn_off, chip);
        int st = load_hsk_cek(chip, hsk_cek);
        if (st != CSV_OK)
            return st;
        p.hsk = hsk_cek;
        p.hsk_len = CSV_ROOT_CERT_LEN;
        p.cek = hsk_cek + CSV_ROOT_CERT_LEN;
        p.cek_len = CSV_CERT_LEN;
    }
    struct csv_verify_result *res = malloc(sizeof(*res));
    if (!res)
        return csv_fail(CSV_ERR_NO_MEMORY, "out of memory");
    int st = verify_attestation_report_ex(report_buf, buf_len, &p, res);
    free(res);
    return st;
}
