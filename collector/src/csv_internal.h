/* Internal interfaces of libcsv, shared by the library, the tools and the unit tests. */
#ifndef CSV_INTERNAL_H
#define CSV_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "../csv_sdk.h"

/* ---- report layout (report-format.md §2, §6) ---- */
#define CSV_V1_SIGNED_LEN 180
#define CSV_V1_SIG_OFF 192
#define CSV_V1_ANONCE_OFF 188
#define CSV_V1_PEK_OFF 336
#define CSV_V1_SN_OFF 2420
#define CSV_V1_KEY_OFF 2484
#define CSV_V1_MAC_OFF 2516
#define CSV_EXT_SIGNED_LEN 1024
#define CSV_EXT_SIG_OFF 1024
#define CSV_EXT_PEK_OFF 1168
#define CSV_EXT_SN_OFF 3252
#define CSV_EXT_KEY_OFF 3316
#define CSV_EXT_MAC_OFF 3348
#define CSV_OFF_REPORT_DATA 64
#define CSV_OFF_MNONCE 128
#define CSV_OFF_MEASURE 144
#define CSV_OFF_POLICY 176
#define CSV_OFF_SIG_USAGE 180
#define CSV_OFF_SIG_ALGO 184
#define CSV_SN_LEN 64
#define CSV_CERT_LEN 2084
#define CSV_ROOT_CERT_LEN 832
#define CSV_HSK_CEK_LEN (CSV_ROOT_CERT_LEN + CSV_CERT_LEN)

/* Where the pieces of a report live; V1 and V2/V3 differ only in these numbers. */
struct csv_layout {
    int version;          /* 1, or 2 for V2/V3 */
    size_t len;           /* 2548 or 3380 */
    size_t signed_len;
    size_t sig_off;
    size_t pek_off;
    size_t sn_off;
    size_t key_off;
    size_t mac_off;
};

extern const struct csv_layout csv_layout_v1;
extern const struct csv_layout csv_layout_ext;

/* ---- errors ---- */
/* Record the detail line of a failure and return status (for `return csv_fail(...)`). */
int csv_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- crypto (crypto.c) ---- */
int csv_sm3(const void *data, size_t len, uint8_t out[32]);
int csv_sm3_2(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32]);
int csv_hmac_sm3(const uint8_t *key, size_t key_len, const void *data, size_t len, uint8_t out[32]);
int csv_random(void *buf, size_t len);

struct csv_pubkey {
    uint8_t x[32];        /* big-endian */
    uint8_t y[32];
    uint8_t uid[254];
    size_t uid_len;
};

/* SM2 verification with the signer's uid as distinguishing id; r and s are 72-byte LE fields.
 * CSV_OK, CSV_ERR_SIGNATURE (with the reason in csv_last_error) or CSV_ERR_CRYPTO. */
int csv_sm2_verify(const struct csv_pubkey *key, const uint8_t *msg, size_t msg_len,
                   const uint8_t r_le72[72], const uint8_t s_le72[72]);
int csv_all_zero(const uint8_t *p, size_t n);
uint32_t csv_le32(const uint8_t *p);
void csv_le_to_be32(const uint8_t le[32], uint8_t be[32]);

/* ---- request and response (request.c) ---- */
/* Write the 112-byte request (132 with ext flags) at page offset 0; the rest of the page is zero. */
int csv_build_request(uint8_t page[CSV_PAGE_LEN], const uint8_t *user_data, size_t user_data_len,
                      const uint8_t mnonce[CSV_MNONCE_LEN], unsigned ext_flags);
/* Check the firmware response against the mnonce that was sent: mnonce echo, then MAC. With
 * allow_ext the V2/V3 layout is tried first. On success *layout names the layout found. */
int csv_check_response(const uint8_t *page, size_t len, const uint8_t mnonce[CSV_MNONCE_LEN],
                       int allow_ext, const struct csv_layout **layout);
void csv_blank_sealing_key(uint8_t *report, const struct csv_layout *layout);
/* Clear (de-obfuscated for V1) copy of the report's first 188 bytes and of the signer block. */
void csv_deobfuscate(const uint8_t *raw, const struct csv_layout *layout, uint8_t *clear);
/* A V1 report whose signer block a collector already de-obfuscated (the CoCo evidence shape): the
 * PEK words at 344 read clear although the anonce is not zero (report-format.md §6.1). */
int csv_v1_signer_clear(const uint8_t *raw);
/* The signer block [pek_off, mac_off) as the firmware stored it and MACed it (re-obfuscated when
 * the collector cleared it); `out` holds mac_off - pek_off bytes. */
void csv_signer_block_as_stored(const uint8_t *raw, const struct csv_layout *layout, uint8_t *out);

/* ---- locked page and pagemap (page.c) ---- */
int csv_page_alloc(uint8_t **page); /* mmap + mlock one zeroed page */
void csv_page_free(uint8_t *page);  /* zero, unlock, unmap */
int csv_pagemap_translate(const void *va, uint64_t *gpa);

/* ---- transports ---- */
int csv_vmmcall(unsigned nr, uint64_t gpa, uint64_t len, long *host_ret);  /* vmmcall.c */
int csv_ioctl_report(const char *device, uint8_t *page, size_t len);       /* ioctl.c */

/* ---- collection (collect.c) ---- */
enum csv_method { CSV_METHOD_VMMCALL, CSV_METHOD_IOCTL };
/* Runs the whole guest flow on one locked page; the report in `out` has its sealing key zeroed,
 * `key_out` (may be NULL) receives the sealing key. */
int csv_collect(enum csv_method method, const struct csv_request_params *params, uint8_t *out,
                size_t out_len, struct csv_report_info *info, uint8_t key_out[CSV_SEALING_KEY_LEN]);

/* ---- certificates (certs.c) ---- */
struct csv_root_cert {    /* HRK / HSK, 832 bytes */
    uint8_t key_id[16];
    uint8_t certifying_id[16];
    uint32_t key_usage;
    uint32_t curve_id;
    struct csv_pubkey key;
    const uint8_t *raw;
};

struct csv_cert {         /* CEK / PEK, 2084 bytes (clear) */
    uint32_t version;
    uint32_t pubkey_usage;
    uint32_t pubkey_algo;
    uint32_t curve_id;
    struct csv_pubkey key;
    uint8_t certifying_id[16];
    const uint8_t *raw;
};

#define CSV_USAGE_HRK 0x0000u
#define CSV_USAGE_HSK 0x0013u
#define CSV_USAGE_INVALID 0x1000u
#define CSV_USAGE_PEK 0x1002u
#define CSV_USAGE_CEK 0x1004u
#define CSV_ALGO_SM2_SA 4u
#define CSV_CURVE_SM2 3u

/* Parse and check the structure (padding, uid length); CSV_OK or CSV_ERR_SIGNATURE with a reason. */
int csv_parse_root_cert(const uint8_t raw[CSV_ROOT_CERT_LEN], struct csv_root_cert *out);
int csv_parse_cert(const uint8_t raw[CSV_CERT_LEN], struct csv_cert *out);
/* Signature by `signer` over a root-style certificate's [0,576). */
int csv_verify_root_cert_sig(const struct csv_root_cert *cert, const struct csv_pubkey *signer);
/* A slot with (sig_usage, SM2) whose signature by `signer` over [0,1044) verifies. */
int csv_verify_cert_sig(const struct csv_cert *cert, uint32_t sig_usage, const struct csv_pubkey *signer);

/* The pinned Hygon root key (report-format.md §11). */
extern const uint8_t csv_hrk_key_id[16];
extern const struct csv_pubkey csv_hrk_pubkey;

/* The layout of a report buffer: by size for 2548 and 3380 bytes, by probing a 4096-byte page as
 * csvverify does. CSV_OK, or CSV_ERR_REPORT_FORMAT with the reason (unknown size, ambiguous page,
 * no report in the page) and *layout NULL. */
int csv_probe_layout(const uint8_t *buf, size_t len, const struct csv_layout **layout);

#endif /* CSV_INTERNAL_H */
