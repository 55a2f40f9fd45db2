/* verify-attestation: offline check of a report against the pinned Hygon root (or an explicit extra
 * root), with the exit classes of the Python verifier: 0 passed, 1 unreadable input, 2 usage,
 * 3 signature/chain failure, 4 collateral missing, 5 expectation failure. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../csv_sdk.h"
#include "tool_common.h"

#define ROOT_CERT_LEN 832
#define CERT_LEN 2084
#define HSK_CEK_LEN (ROOT_CERT_LEN + CERT_LEN)

static const char usage[] =
    "REPORT [--chain] [--hsk-cek FILE | --hsk FILE --cek FILE] [--trust-root FILE]\n"
    "       [--expect-user-data HEX|@FILE] [--expect-mnonce HEX|@FILE] [--expect-measure HEX|@FILE] [--quiet]";

enum { OPT_CHAIN = 256, OPT_HSK_CEK, OPT_HSK, OPT_CEK, OPT_TRUST_ROOT, OPT_USER_DATA, OPT_MNONCE, OPT_MEASURE, OPT_QUIET };

static const struct option options[] = {
    {"chain", no_argument, NULL, OPT_CHAIN},
    {"hsk-cek", required_argument, NULL, OPT_HSK_CEK},
    {"hsk", required_argument, NULL, OPT_HSK},
    {"cek", required_argument, NULL, OPT_CEK},
    {"trust-root", required_argument, NULL, OPT_TRUST_ROOT},
    {"expect-user-data", required_argument, NULL, OPT_USER_DATA},
    {"expect-mnonce", required_argument, NULL, OPT_MNONCE},
    {"expect-measure", required_argument, NULL, OPT_MEASURE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct args {
    const char *report, *hsk_cek, *hsk, *cek, *trust_root;
    const char *user_data, *mnonce, *measure;
    int chain, quiet;
};

static void parse(int argc, char **argv, struct args *a)
{
    int opt;
    memset(a, 0, sizeof(*a));
    while ((opt = getopt_long(argc, argv, "hq", options, NULL)) != -1) {
        switch (opt) {
        case 'h': printf("usage: %s %s\n", tool_name, usage); exit(EXIT_OK);
        case OPT_CHAIN: a->chain = 1; break;
        case OPT_HSK_CEK: a->hsk_cek = optarg; break;
        case OPT_HSK: a->hsk = optarg; break;
        case OPT_CEK: a->cek = optarg; break;
        case OPT_TRUST_ROOT: a->trust_root = optarg; break;
        case OPT_USER_DATA: a->user_data = optarg; break;
        case OPT_MNONCE: a->mnonce = optarg; break;
        case OPT_MEASURE: a->measure = optarg; break;
        case 'q':
        case OPT_QUIET: a->quiet = 1; break;
        default: tool_usage_error(usage, "unknown option or missing value");
        }
    }
    if (optind != argc - 1)
        tool_usage_error(usage, optind == argc ? "give one report file" : "give exactly one report file");
    a->report = argv[optind];
    if (a->hsk_cek && (a->hsk || a->cek))
        tool_usage_error(usage, "give --hsk-cek FILE or --hsk FILE --cek FILE, not both");
    if (!a->hsk != !a->cek)
        tool_usage_error(usage, "--hsk and --cek go together");
    if (a->hsk_cek || a->hsk)
        a->chain = 1;
}

/* Certificates are collateral: a missing or mis-sized file is exit class 4. */
static void read_collateral(const char *what, const char *path, uint8_t *out, size_t len)
{
    ssize_t n = tool_read_file(path, out, len);
    if (n < 0 && errno != EFBIG)
        tool_die(EXIT_COLLATERAL, "%s: cannot read %s: %s", what, path, tool_read_problem(errno));
    if (n != (ssize_t)len)
        tool_die(EXIT_COLLATERAL, "%s: %s is not a %zu-byte certificate file", what, path, len);
}

static int exit_class(int status)
{
    switch (status) {
    case CSV_OK: return EXIT_OK;
    case CSV_ERR_REPORT_FORMAT: return EXIT_INPUT;
    case CSV_ERR_COLLATERAL: return EXIT_COLLATERAL;
    case CSV_ERR_EXPECTATION: return EXIT_EXPECTATION;
    default: return EXIT_SIGNATURE;
    }
}

/* The reason of the first failed check with `code` (csv_last_error() carries the check id too). */
static const char *failed_check_reason(const struct csv_verify_result *r, int code)
{
    for (unsigned i = 0; i < r->n_checks; i++)
        if (r->checks[i].status == CSV_CHECK_FAIL && r->checks[i].code == code)
            return r->checks[i].reason;
    return csv_last_error();
}

static const char *status_word(int status)
{
    static const char *const words[] = {"PASS", "FAIL", "SKIP", "WARN"};
    return status >= 0 && status <= 3 ? words[status] : "????";
}

static void print_result(const struct args *a, const struct csv_verify_result *r, int st)
{
    if (!a->quiet) {
        printf("%s: %s report, chip %s\n", a->report, r->version == 1 ? "V1" : r->version ? "V2/V3" : "unknown",
               r->chip_id[0] ? r->chip_id : "?");
        for (unsigned i = 0; i < r->n_checks; i++)
            printf("  %s  %-18s %s\n", status_word(r->checks[i].status), r->checks[i].id, r->checks[i].reason);
    }
    if (st != CSV_OK) {
        printf("verdict: FAIL (%s): %s\n", csv_strerror(st), csv_last_error());
        return;
    }
    const char *anchor = r->anchored_to == 1   ? "chain verified to the pinned Hygon root"
                         : r->anchored_to == 2 ? "chain verified to the EXPLICIT trust root, not the Hygon root"
                                               : "chain NOT checked: not anchored to Hygon (give --hsk-cek FILE)";
    printf("verdict: PASS (%s)\n", anchor);
}

int main(int argc, char **argv)
{
    struct args a;
    static uint8_t report[CSV_PAGE_LEN], hsk_cek[HSK_CEK_LEN], root[ROOT_CERT_LEN];
    static uint8_t user_data[CSV_USER_DATA_LEN], mnonce[CSV_MNONCE_LEN], measure[32];
    static struct csv_verify_result result;
    struct csv_verify_params p = {0};

    tool_init("verify-attestation");
    parse(argc, argv, &a);

    ssize_t n = tool_read_file(a.report, report, sizeof(report));
    if (n < 0)
        tool_die(EXIT_INPUT, "cannot read report %s: %s", a.report,
                 errno == EFBIG ? "larger than a 4096-byte page, not a raw report" : tool_read_problem(errno));

    p.verify_chain = a.chain;
    if (a.hsk_cek)
        read_collateral("--hsk-cek", a.hsk_cek, hsk_cek, HSK_CEK_LEN);
    if (a.hsk) {
        read_collateral("--hsk", a.hsk, hsk_cek, ROOT_CERT_LEN);
        read_collateral("--cek", a.cek, hsk_cek + ROOT_CERT_LEN, CERT_LEN);
    }
    if (a.hsk_cek || a.hsk) {
        p.hsk = hsk_cek, p.hsk_len = ROOT_CERT_LEN;
        p.cek = hsk_cek + ROOT_CERT_LEN, p.cek_len = CERT_LEN;
    }
    if (a.trust_root) {
        /* A bad --trust-root is a bad input (class 1), as in the Python verifier. */
        ssize_t len = tool_read_file(a.trust_root, root, sizeof(root));
        if (len < 0 && errno == EFBIG)
            tool_die(EXIT_INPUT, "--trust-root %s: a trust root is an 832-byte self-signed root certificate; "
                     "this file is larger than 832 bytes", a.trust_root);
        if (len < 0)
            tool_die(EXIT_INPUT, "--trust-root: cannot read %s: %s", a.trust_root, tool_read_problem(errno));
        if (csv_check_trust_root(root, (unsigned)len) != CSV_OK)
            tool_die(EXIT_INPUT, "--trust-root %s: %s", a.trust_root, csv_last_error());
        p.trust_root = root, p.trust_root_len = (unsigned)len;
    }
    if (a.user_data) {
        p.expect_user_data_len =
            (unsigned)tool_hex_or_file("--expect-user-data", usage, a.user_data, user_data, sizeof(user_data));
        p.expect_user_data = user_data;
    }
    if (a.mnonce) {
        if (tool_hex_or_file("--expect-mnonce", usage, a.mnonce, mnonce, sizeof(mnonce)) != sizeof(mnonce))
            tool_usage_error(usage, "--expect-mnonce: expected 16 bytes");
        p.expect_mnonce = mnonce;
    }
    if (a.measure) {
        if (tool_hex_or_file("--expect-measure", usage, a.measure, measure, sizeof(measure)) != sizeof(measure))
            tool_usage_error(usage, "--expect-measure: expected 32 bytes");
        p.expect_measure = measure;
    }

    int st = verify_attestation_report_ex(report, (unsigned)n, &p, &result);
    if (st == CSV_ERR_REPORT_FORMAT)
        tool_die(EXIT_INPUT, "%s: %s", a.report, failed_check_reason(&result, CSV_ERR_REPORT_FORMAT));
    print_result(&a, &result, st);
    return exit_class(st);
}
