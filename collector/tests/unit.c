/* Unit tests of libcsv: request building, hashing, response checks, blanking, pagemap, the vmmcall
 * trap, SM2 intermediate values and offline verification. Usage: unit [VECTORS_DIR]; tests that
 * need the real vectors (report.cert, hsk_cek.cert, hrk.cert) skip with a reason when absent. */
#define _GNU_SOURCE
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../src/csv_internal.h"

static int failures, passes, skips;
static const char *vectors;
static uint8_t real_report[CSV_REPORT_V1_LEN], real_hsk_cek[CSV_HSK_CEK_LEN], real_hrk[CSV_ROOT_CERT_LEN];
static int have_vectors;

#define CHECK(cond, ...)                                                                                          \
    do {                                                                                                          \
        if (!(cond)) {                                                                                            \
            printf("not ok - %s:%d: ", __func__, __LINE__);                                                      \
            printf(__VA_ARGS__);                                                                                  \
            printf("\n");                                                                                         \
            failures++;                                                                                           \
        } else {                                                                                                  \
            passes++;                                                                                             \
        }                                                                                                         \
    } while (0)

#define CHECK_STATUS(expr, want) CHECK((expr) == (want), "%s: got %d, want %d (%s)", #expr, (expr), (want), csv_last_error())

static void skip(const char *test, const char *reason)
{
    printf("skip - %s: %s\n", test, reason);
    skips++;
}

static void unhex(const char *hex, uint8_t *out)
{
    for (size_t i = 0; hex[2 * i]; i++)
        sscanf(hex + 2 * i, "%2hhx", &out[i]);
}

static int equals_hex(const uint8_t *bytes, const char *hex)
{
    uint8_t want[128];
    size_t n = strlen(hex) / 2;
    unhex(hex, want);
    return memcmp(bytes, want, n) == 0;
}

static int load(const char *name, uint8_t *out, size_t len)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/%s", vectors, name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return 0;
    size_t n = fread(out, 1, len, f);
    fclose(f);
    return n == len;
}

static const char *real_mnonce_hex = "67c6697351ff4aec29cdbaabf2fbe346";

/* ---- hashing ---- */

static void test_sm3_vectors(void)
{
    uint8_t out[32], abcd[64];
    CHECK_STATUS(csv_sm3("abc", 3, out), CSV_OK);
    CHECK(equals_hex(out, "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"), "SM3(abc)");
    for (int i = 0; i < 64; i++)
        abcd[i] = "abcd"[i % 4];
    CHECK_STATUS(csv_sm3(abcd, sizeof(abcd), out), CSV_OK);
    CHECK(equals_hex(out, "debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732"), "SM3(abcd x16)");
    CHECK_STATUS(csv_sm3_2("ab", 2, "c", 1, out), CSV_OK);
    CHECK(equals_hex(out, "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"), "SM3 in two parts");
}

static void test_hmac_sm3_vector(void)
{
    /* Reference value computed with an independent pure-Python SM3 and RFC 2104. */
    static const char key[] = "csv-collector-test-key";
    static const char msg[] = "The quick brown fox jumps over the lazy dog";
    uint8_t out[32];
    CHECK_STATUS(csv_hmac_sm3((const uint8_t *)key, strlen(key), msg, strlen(msg), out), CSV_OK);
    CHECK(equals_hex(out, "639eb6a1ec9dcf9c8839a1b67e34f9679b229368631e31db8de36ba161411c86"), "HMAC-SM3 vector");
}

/* ---- request ---- */

static void test_request_building(void)
{
    uint8_t page[CSV_PAGE_LEN], mnonce[16], want_hash[32];
    unhex(real_mnonce_hex, mnonce);
    memset(page, 0xAA, sizeof(page));
    CHECK_STATUS(csv_build_request(page, (const uint8_t *)"user data", 9, mnonce, CSV_EXT_NONE), CSV_OK);
    CHECK(memcmp(page, "user data", 9) == 0, "user data at offset 0");
    CHECK(csv_all_zero(page + 9, 55), "user data zero padded to 64 bytes");
    CHECK(memcmp(page + 64, mnonce, 16) == 0, "mnonce at offset 64");
    /* report-format.md §17: SM3(report_data || mnonce) of the reference report. */
    CHECK(equals_hex(page + 80, "cd01d9775f66a2fc94aa2df90441e66b233b4a2205d1ea54e8246df6792c7d7c"),
          "request hash = SM3(user data || mnonce)");
    csv_sm3(page, 80, want_hash);
    CHECK(memcmp(page + 80, want_hash, 32) == 0, "hash covers bytes 0..79");
    CHECK(csv_all_zero(page + CSV_REQUEST_LEN, CSV_PAGE_LEN - CSV_REQUEST_LEN), "rest of the page zero (no EXT)");

    CHECK_STATUS(csv_build_request(page, (const uint8_t *)"x", 1, mnonce, CSV_EXT_V2), CSV_OK);
    CHECK(memcmp(page + 112, "ATTESTATION_EXT\0", 16) == 0, "EXT magic at 112");
    CHECK(csv_le32(page + 128) == 1, "V2 flags word 1 at 128");
    CHECK(csv_all_zero(page + CSV_REQUEST_EXT_LEN, CSV_PAGE_LEN - CSV_REQUEST_EXT_LEN), "rest zero after EXT");
    CHECK_STATUS(csv_build_request(page, (const uint8_t *)"x", 1, mnonce, CSV_EXT_V3), CSV_OK);
    CHECK(csv_le32(page + 128) == 3, "V3 flags word 3 at 128");

    uint8_t big[65] = {0};
    CHECK_STATUS(csv_build_request(page, big, 64, mnonce, CSV_EXT_NONE), CSV_OK);
    CHECK_STATUS(csv_build_request(page, big, 65, mnonce, CSV_EXT_NONE), CSV_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(csv_build_request(page, big, 1, mnonce, 2), CSV_ERR_INVALID_ARGUMENT);
}

/* ---- response checks and blanking ---- */

static void real_page(uint8_t page[CSV_PAGE_LEN])
{
    memset(page, 0, CSV_PAGE_LEN);
    memcpy(page, real_report, sizeof(real_report));
}

static void test_check_response_real(void)
{
    if (!have_vectors)
        return skip(__func__, "real vectors absent");
    uint8_t page[CSV_PAGE_LEN], mnonce[16];
    const struct csv_layout *layout = NULL;
    unhex(real_mnonce_hex, mnonce);
    real_page(page);
    CHECK_STATUS(csv_check_response(page, CSV_PAGE_LEN, mnonce, 0, &layout), CSV_OK);
    CHECK(layout == &csv_layout_v1, "V1 layout");
    layout = NULL;
    CHECK_STATUS(csv_check_response(page, CSV_PAGE_LEN, mnonce, 1, &layout), CSV_OK);
    CHECK(layout == &csv_layout_v1, "V1 answer to an EXT request is accepted as V1");

    uint8_t other[16];
    memcpy(other, mnonce, 16);
    other[15] ^= 1;
    CHECK_STATUS(csv_check_response(page, CSV_PAGE_LEN, other, 0, &layout), CSV_ERR_MNONCE_MISMATCH);

    static const size_t mac_covered[] = {CSV_V1_PEK_OFF, 1500, CSV_V1_SN_OFF, CSV_V1_KEY_OFF + 5, CSV_V1_MAC_OFF + 31};
    for (size_t i = 0; i < sizeof(mac_covered) / sizeof(mac_covered[0]); i++) {
        real_page(page);
        page[mac_covered[i]] ^= 0x40;
        CHECK(csv_check_response(page, CSV_PAGE_LEN, mnonce, 0, &layout) == CSV_ERR_MAC_MISMATCH,
              "flip at %zu must break the MAC", mac_covered[i]);
    }
    real_page(page);
    page[CSV_OFF_MNONCE] ^= 1; /* the echo itself damaged */
    CHECK_STATUS(csv_check_response(page, CSV_PAGE_LEN, mnonce, 0, &layout), CSV_ERR_MNONCE_MISMATCH);
}

static void test_check_response_ext(void)
{
    /* A synthetic V2 answer: clear mnonce echo and a MAC over [1168, 3348). */
    uint8_t page[CSV_PAGE_LEN] = {0}, mnonce[16];
    const struct csv_layout *layout = NULL;
    unhex(real_mnonce_hex, mnonce);
    memcpy(page + CSV_OFF_MNONCE, mnonce, 16);
    for (size_t i = CSV_EXT_PEK_OFF; i < CSV_EXT_MAC_OFF; i++)
        page[i] = (uint8_t)(i * 7);
    csv_hmac_sm3(mnonce, 16, page + CSV_EXT_PEK_OFF, CSV_EXT_MAC_OFF - CSV_EXT_PEK_OFF, page + CSV_EXT_MAC_OFF);
    CHECK_STATUS(csv_check_response(page, CSV_PAGE_LEN, mnonce, 1, &layout), CSV_OK);
    CHECK(layout == &csv_layout_ext, "V2/V3 layout found");
    CHECK(csv_check_response(page, CSV_PAGE_LEN, mnonce, 0, &layout) != CSV_OK, "a V1 request does not accept V2");
    page[CSV_EXT_SN_OFF] ^= 1;
    CHECK_STATUS(csv_check_response(page, CSV_PAGE_LEN, mnonce, 1, &layout), CSV_ERR_MAC_MISMATCH);
}

static void test_blanking(void)
{
    uint8_t page[CSV_PAGE_LEN], before[CSV_PAGE_LEN];
    for (size_t i = 0; i < sizeof(page); i++)
        page[i] = (uint8_t)(i | 1);
    memcpy(before, page, sizeof(page));
    csv_blank_sealing_key(page, &csv_layout_v1);
    CHECK(csv_all_zero(page + 2484, 32), "V1 sealing-key field zero");
    CHECK(memcmp(page, before, 2484) == 0 && memcmp(page + 2516, before + 2516, sizeof(page) - 2516) == 0,
          "nothing else changed (V1)");
    memcpy(page, before, sizeof(page));
    csv_blank_sealing_key(page, &csv_layout_ext);
    CHECK(csv_all_zero(page + 3316, 32), "V2/V3 field zero");
    CHECK(memcmp(page, before, 3316) == 0 && memcmp(page + 3348, before + 3348, sizeof(page) - 3348) == 0,
          "nothing else changed (V2/V3)");

    if (!have_vectors)
        return skip(__func__, "real vectors absent (MAC after blanking)");
    uint8_t mnonce[16];
    const struct csv_layout *layout;
    unhex(real_mnonce_hex, mnonce);
    real_page(page);
    CHECK(!csv_all_zero(page + 2484, 32), "the reference report carries a sealing key");
    csv_blank_sealing_key(page, &csv_layout_v1);
    CHECK_STATUS(csv_check_response(page, CSV_PAGE_LEN, mnonce, 0, &layout), CSV_ERR_MAC_MISMATCH);
}

/* ---- pagemap and the vmmcall trap ---- */

static int has_cap_sys_admin(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    unsigned long long caps = 0;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &caps) == 1)
            break;
    if (f)
        fclose(f);
    return (caps >> 21) & 1; /* CAP_SYS_ADMIN */
}

/* ---- page layout probe (the same rules as csvverify's detect_layout) ---- */

static void put_pek_words(uint8_t *page, size_t cert_off, uint32_t mask)
{
    const uint32_t words[3] = {CSV_USAGE_PEK ^ mask, CSV_ALGO_SM2_SA ^ mask, CSV_CURVE_SM2 ^ mask};
    for (int w = 0; w < 3; w++)
        for (int b = 0; b < 4; b++)
            page[cert_off + 8 + 4 * w + b] = (uint8_t)(words[w] >> (8 * b));
}

static void test_probe_layout(void)
{
    static uint8_t page[CSV_PAGE_LEN];
    const struct csv_layout *l = &csv_layout_v1;
    const uint32_t anonce = 0x12345679;

    CHECK_STATUS(csv_probe_layout(page, CSV_REPORT_V1_LEN, &l), CSV_OK);
    CHECK(l == &csv_layout_v1, "2548 bytes are V1 by size");
    CHECK_STATUS(csv_probe_layout(page, CSV_REPORT_EXT_LEN, &l), CSV_OK);
    CHECK(l == &csv_layout_ext, "3380 bytes are V2/V3 by size");
    CHECK_STATUS(csv_probe_layout(page, 100, &l), CSV_ERR_REPORT_FORMAT);
    CHECK(l == NULL && strstr(csv_last_error(), "100 bytes is not a raw report"), "%s", csv_last_error());
    CHECK_STATUS(csv_probe_layout(page, CSV_PAGE_LEN, &l), CSV_ERR_REPORT_FORMAT);
    CHECK(strstr(csv_last_error(), "no PEK certificate"), "zero page: %s", csv_last_error());

    for (int clear = 0; clear < 2; clear++) { /* V1 obfuscated, and already de-obfuscated (CoCo) */
        memset(page, 0, sizeof(page));
        memcpy(page + CSV_V1_ANONCE_OFF, &anonce, 4);
        put_pek_words(page, CSV_V1_PEK_OFF, clear ? 0 : anonce);
        CHECK_STATUS(csv_probe_layout(page, CSV_PAGE_LEN, &l), CSV_OK);
        CHECK(l == &csv_layout_v1, "V1 page (signer block %s)", clear ? "clear" : "obfuscated");
        CHECK(csv_v1_signer_clear(page) == clear, "signer block clear: %d", clear);
        page[CSV_PAGE_LEN - 1] = 1;
        CHECK_STATUS(csv_probe_layout(page, CSV_PAGE_LEN, &l), CSV_ERR_REPORT_FORMAT);
        page[CSV_PAGE_LEN - 1] = 0;
        page[CSV_REPORT_V1_LEN] = 1;
        CHECK_STATUS(csv_probe_layout(page, CSV_PAGE_LEN, &l), CSV_ERR_REPORT_FORMAT);
    }

    memset(page, 0, sizeof(page));
    put_pek_words(page, CSV_EXT_PEK_OFF, 0);
    CHECK_STATUS(csv_probe_layout(page, CSV_PAGE_LEN, &l), CSV_OK);
    CHECK(l == &csv_layout_ext, "V2/V3 page");
    page[CSV_REPORT_EXT_LEN] = 1;
    CHECK_STATUS(csv_probe_layout(page, CSV_PAGE_LEN, &l), CSV_ERR_REPORT_FORMAT);
    page[CSV_REPORT_EXT_LEN] = 0;
    put_pek_words(page, CSV_V1_PEK_OFF, 0);
    CHECK_STATUS(csv_probe_layout(page, CSV_PAGE_LEN, &l), CSV_ERR_REPORT_FORMAT);
    CHECK(strstr(csv_last_error(), "reads both as V1 and as V2/V3"), "ambiguous: %s", csv_last_error());
}

static void test_signer_block_as_stored(void)
{
    static uint8_t report[CSV_REPORT_V1_LEN], clear[CSV_REPORT_EXT_LEN];
    uint8_t stored[CSV_V1_MAC_OFF - CSV_V1_PEK_OFF], again[sizeof(stored)];
    const uint32_t anonce = 0xa5c3e1f7;
    for (size_t i = 0; i < sizeof(report); i++)
        report[i] = (uint8_t)(i * 7 + 3);
    memcpy(report + CSV_V1_ANONCE_OFF, &anonce, 4);
    put_pek_words(report, CSV_V1_PEK_OFF, anonce);
    csv_signer_block_as_stored(report, &csv_layout_v1, stored);
    CHECK(memcmp(stored, report + CSV_V1_PEK_OFF, sizeof(stored)) == 0, "an obfuscated signer block is used as is");
    csv_deobfuscate(report, &csv_layout_v1, clear);
    memcpy(report + CSV_V1_PEK_OFF, clear + CSV_V1_PEK_OFF, CSV_V1_KEY_OFF - CSV_V1_PEK_OFF);
    CHECK(csv_v1_signer_clear(report), "the de-obfuscated signer block is recognised");
    csv_signer_block_as_stored(report, &csv_layout_v1, again);
    CHECK(memcmp(stored, again, sizeof(stored)) == 0, "a cleared signer block is re-obfuscated for the MAC");
}

static void test_pagemap_privileged(void)
{
    if (!has_cap_sys_admin())
        return skip(__func__, "needs CAP_SYS_ADMIN (run make test as root)");
    uint8_t *page = NULL;
    uint64_t gpa = 0;
    CHECK_STATUS(csv_page_alloc(&page), CSV_OK);
    if (!page)
        return;
    CHECK_STATUS(csv_pagemap_translate(page, &gpa), CSV_OK);
    CHECK(gpa != 0, "a locked page has a non-zero frame");
    CHECK(gpa % CSV_PAGE_LEN == 0, "the address is page aligned");
    csv_page_free(page);
}

/* Returns 0 when the explanation is right, 1 otherwise (runs in a child without privilege). */
static int unprivileged_translation(void)
{
    uint8_t *page = NULL;
    uint64_t gpa = 0;
    if (csv_page_alloc(&page) != CSV_OK) {
        printf("  (page allocation failed: %s)\n", csv_last_error());
        return 1;
    }
    int st = csv_pagemap_translate(page, &gpa);
    int ok = st == CSV_ERR_PAGEMAP_NO_PFN && strstr(csv_last_error(), "CAP_SYS_ADMIN")
             && strstr(csv_last_error(), "ioctl-get-attestation");
    if (!ok)
        printf("  (status %d: %s)\n", st, csv_last_error());
    csv_page_free(page);
    return !ok;
}

static void test_pagemap_unprivileged(void)
{
    if (!has_cap_sys_admin()) {
        CHECK(unprivileged_translation() == 0, "explanation without CAP_SYS_ADMIN");
        return;
    }
    if (geteuid() != 0)
        return skip(__func__, "has CAP_SYS_ADMIN but is not root: cannot drop to uid 65534");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
            _exit(2);
        prctl(PR_SET_DUMPABLE, 1); /* a setuid drop makes /proc/self/pagemap unreadable otherwise */
        _exit(unprivileged_translation());
    }
    int status = 0;
    waitpid(pid, &status, 0);
    if (WIFEXITED(status) && WEXITSTATUS(status) == 2)
        return skip(__func__, "cannot switch to uid 65534");
    CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "as uid 65534 the frame is hidden and explained");
}

static void dummy_handler(int sig)
{
    (void)sig;
}

static void test_vmmcall_trap(void)
{
    struct sigaction mine, after;
    memset(&mine, 0, sizeof(mine));
    mine.sa_handler = dummy_handler;
    sigaction(SIGSEGV, &mine, NULL);
    long host = 0;
    /* GPA 0 so that even a real CSV host refuses (-EFAULT) without touching any memory. */
    int st = csv_vmmcall(CSV_HC_VM_ATTESTATION, 0, CSV_PAGE_LEN, &host);
    CHECK(st == CSV_ERR_NOT_CSV_GUEST || st == CSV_ERR_HYPERCALL, "vmmcall here: status %d (%s)", st,
          csv_last_error());
    if (st == CSV_ERR_NOT_CSV_GUEST)
        CHECK(strstr(csv_last_error(), "not a CSV guest") != NULL, "message says not a CSV guest");
    sigaction(SIGSEGV, NULL, &after);
    CHECK(after.sa_handler == dummy_handler, "the caller's SIGSEGV handler is restored");
    signal(SIGSEGV, SIG_DFL);
}

/* ---- SDK surface ---- */

static void test_sdk_arguments(void)
{
    unsigned char buf[CSV_PAGE_LEN];
    struct csv_request_params ext = {.ext_flags = CSV_EXT_V2};
    struct csv_request_params missing = {.device = "/nonexistent/csv-guest"};
    CHECK_STATUS(ioctl_get_attestation_report(buf, 100), CSV_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(ioctl_get_attestation_report(NULL, 4096), CSV_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(ioctl_get_sealing_key(buf, 16), CSV_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(vmmcall_get_attestation_report_ex(buf, sizeof(buf), &ext, NULL), CSV_ERR_UNSUPPORTED);
    CHECK_STATUS(ioctl_get_attestation_report_ex(buf, CSV_REPORT_V1_LEN, &ext, NULL), CSV_ERR_BUFFER_TOO_SMALL);
    CHECK_STATUS(ioctl_get_attestation_report_ex(buf, sizeof(buf), &missing, NULL), CSV_ERR_NO_DEVICE);
    CHECK_STATUS(ioctl_get_sealing_key_ex(buf, 32, &missing), CSV_ERR_NO_DEVICE);

    char path[] = "/tmp/csv-unit-XXXXXX"; /* a regular file is not the driver */
    int fd = mkstemp(path);
    if (fd >= 0) {
        close(fd);
        struct csv_request_params file = {.device = path};
        CHECK_STATUS(ioctl_get_attestation_report_ex(buf, sizeof(buf), &file, NULL), CSV_ERR_IOCTL);
        CHECK(strstr(csv_last_error(), "ENOTTY") != NULL, "explains ENOTTY: %s", csv_last_error());
        unlink(path);
    }
}

static void test_strerror(void)
{
    for (int code = CSV_OK; code >= CSV_ERR_EXPECTATION; code--) {
        CHECK(strcmp(csv_strerror(code), "unknown status") != 0, "code %d has a name", code);
        for (int other = code - 1; other >= CSV_ERR_EXPECTATION; other--)
            CHECK(strcmp(csv_strerror(code), csv_strerror(other)) != 0, "codes %d and %d differ", code, other);
    }
    CHECK(strcmp(csv_strerror(-999), "unknown status") == 0, "unknown code");
}

/* ---- SM2 intermediate values (report-format.md §7.4) ---- */

/* ZA = SM3(ENTL || ID || a || b || Gx || Gy || xQ || yQ), recomputed here from the spec's formula. */
static void za_of(const struct csv_pubkey *key, uint8_t out[32])
{
    static const char *curve =
        "FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC"
        "28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93"
        "32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7"
        "BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0";
    uint8_t buf[2 + 254 + 128 + 64];
    size_t n = 0;
    buf[n++] = (uint8_t)((key->uid_len * 8) >> 8);
    buf[n++] = (uint8_t)(key->uid_len * 8);
    memcpy(buf + n, key->uid, key->uid_len);
    n += key->uid_len;
    unhex(curve, buf + n);
    n += 128;
    memcpy(buf + n, key->x, 32);
    memcpy(buf + n + 32, key->y, 32);
    n += 64;
    csv_sm3(buf, n, out);
}

static void test_sm2_intermediates(void)
{
    if (!have_vectors || !load("hrk.cert", real_hrk, sizeof(real_hrk)))
        return skip(__func__, "real vectors absent");
    struct csv_root_cert hrk, hsk;
    struct csv_cert cek, pek;
    uint8_t clear[CSV_REPORT_V1_LEN], za[32], e[32];
    CHECK_STATUS(csv_parse_root_cert(real_hrk, &hrk), CSV_OK);
    CHECK_STATUS(csv_parse_root_cert(real_hsk_cek, &hsk), CSV_OK);
    CHECK_STATUS(csv_parse_cert(real_hsk_cek + CSV_ROOT_CERT_LEN, &cek), CSV_OK);
    csv_deobfuscate(real_report, &csv_layout_v1, clear);
    CHECK_STATUS(csv_parse_cert(clear + CSV_V1_PEK_OFF, &pek), CSV_OK);

    CHECK(memcmp(&hrk.key, &csv_hrk_pubkey, sizeof(hrk.key)) == 0, "pinned HRK key = hrk.cert's key and uid");
    CHECK(memcmp(hrk.key_id, csv_hrk_key_id, 16) == 0, "pinned HRK key_id");
    za_of(&hrk.key, za);
    CHECK(equals_hex(za, "0c71d1aea468d459bb16059398bdfb6c10a2d194477d921ddb471009cd17fa0c"), "ZA of HRK");
    za_of(&hsk.key, za);
    CHECK(equals_hex(za, "8badeef652321cc6f76982ee97fbfa885f5aead439c6578d50af2a78d7caab0f"), "ZA of HSK");
    za_of(&cek.key, za);
    CHECK(equals_hex(za, "00a33bb3680bc43ff2a7b93e145d2168e59226ee3c41c7cc4b627e415b238169"), "ZA of CEK");
    za_of(&pek.key, za);
    CHECK(equals_hex(za, "33a115cdbeb49c6b00d51ec0548401b345a7ebb464891d8dca6713f6e63c7ab3"), "ZA of PEK");
    csv_sm3_2(za, 32, real_report, CSV_V1_SIGNED_LEN, e);
    CHECK(equals_hex(e, "01dce0d8f8a7aa3d5967fbd808b2666ccb11ea9bd1bf91e46132ec960cb3c54c"), "e of the report");

    CHECK_STATUS(csv_verify_root_cert_sig(&hrk, &hrk.key), CSV_OK);
    struct csv_pubkey default_id = hrk.key;
    memcpy(default_id.uid, "1234567812345678", 16);
    default_id.uid_len = 16;
    CHECK_STATUS(csv_verify_root_cert_sig(&hrk, &default_id), CSV_ERR_SIGNATURE);
    CHECK_STATUS(csv_verify_root_cert_sig(&hsk, &csv_hrk_pubkey), CSV_OK);
    CHECK_STATUS(csv_verify_cert_sig(&cek, CSV_USAGE_HSK, &hsk.key), CSV_OK);
    CHECK_STATUS(csv_verify_cert_sig(&pek, CSV_USAGE_CEK, &cek.key), CSV_OK);
    CHECK_STATUS(csv_verify_cert_sig(&pek, CSV_USAGE_CEK, &hsk.key), CSV_ERR_SIGNATURE);
}

/* ---- offline verification ---- */

static struct csv_verify_params chain_params(const uint8_t *hsk_cek)
{
    struct csv_verify_params p = {.verify_chain = 1, .hsk = hsk_cek, .hsk_len = CSV_ROOT_CERT_LEN,
                                  .cek = hsk_cek + CSV_ROOT_CERT_LEN, .cek_len = CSV_CERT_LEN};
    return p;
}

static const struct csv_check *find_check(const struct csv_verify_result *r, const char *id)
{
    for (unsigned i = 0; i < r->n_checks; i++)
        if (strcmp(r->checks[i].id, id) == 0)
            return &r->checks[i];
    return NULL;
}

static void test_verify_real(void)
{
    if (!have_vectors)
        return skip(__func__, "real vectors absent");
    static struct csv_verify_result r;
    struct csv_verify_params p = chain_params(real_hsk_cek);
    uint8_t report[CSV_REPORT_V1_LEN], hsk_cek[CSV_HSK_CEK_LEN], mnonce[16];

    CHECK_STATUS(verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r), CSV_OK);
    CHECK(r.anchored_to == 1 && r.version == 1 && strcmp(r.chip_id, "NZA9T14052605") == 0, "decoded: chip %s",
          r.chip_id);
    CHECK(r.policy == 0x40000001 && memcmp(r.report_data, "user data", 10) == 0, "decoded policy and report_data");
    const struct csv_check *leak = find_check(&r, "report.sealing_key");
    CHECK(leak && leak->status == CSV_CHECK_WARN, "sealing-key leak flagged");
    const struct csv_check *mac = find_check(&r, "report.mac");
    CHECK(mac && mac->status == CSV_CHECK_PASS, "MAC checked");

    p.verify_chain = 0;
    CHECK_STATUS(verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r), CSV_OK);
    CHECK(r.anchored_to == 0 && find_check(&r, "chain") && find_check(&r, "chain")->status == CSV_CHECK_SKIP,
          "without the chain nothing claims an anchor");

    p = chain_params(real_hsk_cek);
    p.cek = NULL;
    CHECK_STATUS(verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r), CSV_ERR_COLLATERAL);

    /* Flips in the signed body, the signature, the PEK, the MAC region: all rejected. */
    static const size_t flips[] = {0, 100, 179, 180, 186, 188, 192, 263, 300, 335, 400, 1000, 1390, 2000, 2430, 2500, 2547};
    for (size_t i = 0; i < sizeof(flips) / sizeof(flips[0]); i++) {
        memcpy(report, real_report, sizeof(report));
        report[flips[i]] ^= 0x01;
        p = chain_params(real_hsk_cek);
        int st = verify_attestation_report_ex(report, sizeof(report), &p, &r);
        CHECK(st == CSV_ERR_SIGNATURE, "flip at report byte %zu: status %d", flips[i], st);
    }
    static const size_t cert_flips[] = {4, 20, 100, 575, 576, 700, 832 + 8, 832 + 500, 832 + 1043, 832 + 1060};
    for (size_t i = 0; i < sizeof(cert_flips) / sizeof(cert_flips[0]); i++) {
        memcpy(hsk_cek, real_hsk_cek, sizeof(hsk_cek));
        hsk_cek[cert_flips[i]] ^= 0x01;
        p = chain_params(hsk_cek);
        int st = verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r);
        CHECK(st == CSV_ERR_SIGNATURE || st == CSV_ERR_UNTRUSTED_ROOT, "flip at hsk_cek byte %zu: status %d",
              cert_flips[i], st);
        CHECK(r.anchored_to == 0, "a broken chain anchors nothing (flip at %zu)", cert_flips[i]);
    }

    /* A correctly collected (blanked) report: MAC not checkable, verdict still good. */
    memcpy(report, real_report, sizeof(report));
    csv_blank_sealing_key(report, &csv_layout_v1);
    p = chain_params(real_hsk_cek);
    CHECK_STATUS(verify_attestation_report_ex(report, sizeof(report), &p, &r), CSV_OK);
    mac = find_check(&r, "report.mac");
    CHECK(mac && mac->status == CSV_CHECK_SKIP && !find_check(&r, "report.sealing_key"), "blanked: MAC skipped");

    /* Expectations. */
    unhex(real_mnonce_hex, mnonce);
    p.expect_user_data = (const uint8_t *)"user data";
    p.expect_user_data_len = 9;
    p.expect_mnonce = mnonce;
    CHECK_STATUS(verify_attestation_report_ex(report, sizeof(report), &p, &r), CSV_OK);
    p.expect_user_data = (const uint8_t *)"user datb";
    CHECK_STATUS(verify_attestation_report_ex(report, sizeof(report), &p, &r), CSV_ERR_EXPECTATION);
    report[0] ^= 1; /* a signature failure outranks an expectation failure */
    CHECK_STATUS(verify_attestation_report_ex(report, sizeof(report), &p, &r), CSV_ERR_SIGNATURE);

    CHECK_STATUS(verify_attestation_report_ex(real_report, 100, &p, &r), CSV_ERR_REPORT_FORMAT);
    uint8_t page[CSV_PAGE_LEN] = {0};
    memcpy(page, real_report, sizeof(real_report));
    p = chain_params(real_hsk_cek);
    CHECK_STATUS(verify_attestation_report_ex(page, sizeof(page), &p, &r), CSV_OK);
    CHECK(r.version == 1, "a V1 page is recognised");
}

static void test_verify_trust_root(void)
{
    if (!have_vectors || !load("hrk.cert", real_hrk, sizeof(real_hrk)))
        return skip(__func__, "real vectors absent");
    static struct csv_verify_result r;
    struct csv_verify_params p = chain_params(real_hsk_cek);
    uint8_t hsk_cek[CSV_HSK_CEK_LEN];
    /* An HSK naming another issuer is rejected unless that root is given explicitly. */
    memcpy(hsk_cek, real_hsk_cek, sizeof(hsk_cek));
    hsk_cek[20] ^= 0xff;
    p = chain_params(hsk_cek);
    CHECK_STATUS(verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r), CSV_ERR_UNTRUSTED_ROOT);
    p.trust_root = real_hrk;
    p.trust_root_len = sizeof(real_hrk);
    CHECK_STATUS(verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r), CSV_ERR_UNTRUSTED_ROOT);
    uint8_t bad_root[CSV_ROOT_CERT_LEN];
    memcpy(bad_root, real_hrk, sizeof(bad_root));
    bad_root[600] ^= 1;
    p = chain_params(real_hsk_cek);
    p.trust_root = bad_root;
    p.trust_root_len = sizeof(bad_root);
    /* A broken extra root is refused up front, even when the pinned root would anchor the chain. */
    CHECK_STATUS(csv_check_trust_root(bad_root, sizeof(bad_root)), CSV_ERR_COLLATERAL);
    CHECK_STATUS(verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r), CSV_ERR_COLLATERAL);
    CHECK_STATUS(csv_check_trust_root(real_hrk, sizeof(real_hrk)), CSV_OK);
    CHECK_STATUS(csv_check_trust_root(real_hrk, 100), CSV_ERR_COLLATERAL);
    p.trust_root = real_hrk; /* naming the real root again changes nothing */
    CHECK_STATUS(verify_attestation_report_ex(real_report, sizeof(real_report), &p, &r), CSV_OK);
    CHECK(r.anchored_to == 1, "anchored to the pinned root");
}

int main(int argc, char **argv)
{
    vectors = argc > 1 ? argv[1] : "../../shared/vectors/real";
    have_vectors = load("report.cert", real_report, sizeof(real_report))
                   && load("hsk_cek.cert", real_hsk_cek, sizeof(real_hsk_cek));
    if (!have_vectors)
        printf("# real vectors not found in %s: vector tests skip (set VECTORS=DIR)\n", vectors);

    test_sm3_vectors();
    test_hmac_sm3_vector();
    test_request_building();
    test_check_response_real();
    test_check_response_ext();
    test_blanking();
    test_probe_layout();
    test_signer_block_as_stored();
    test_pagemap_privileged();
    test_pagemap_unprivileged();
    test_vmmcall_trap();
    test_sdk_arguments();
    test_strerror();
    test_sm2_intermediates();
    test_verify_real();
    test_verify_trust_root();

    printf("%d checks passed, %d failed, %d tests skipped\n", passes, failures, skips);
    return failures ? 1 : 0;
}
