/* get-attestation, ioctl-get-attestation, get-key and ioctl-get-key share this code; each main()
 * names its transport. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../csv_sdk.h"
#include "collect_tool.h"
#include "tool_common.h"

enum { OPT_OUT = 256, OPT_NONCE_OUT, OPT_USER_DATA, OPT_USER_DATA_FILE, OPT_MNONCE, OPT_EXTENDED, OPT_DEVICE, OPT_HC };

static const struct option report_options[] = {
    {"out", required_argument, NULL, OPT_OUT},
    {"nonce-out", required_argument, NULL, OPT_NONCE_OUT},
    {"user-data", required_argument, NULL, OPT_USER_DATA},
    {"user-data-file", required_argument, NULL, OPT_USER_DATA_FILE},
    {"mnonce", required_argument, NULL, OPT_MNONCE},
    {"extended", required_argument, NULL, OPT_EXTENDED},
    {"device", required_argument, NULL, OPT_DEVICE},
    {"hc", required_argument, NULL, OPT_HC},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

struct collect_args {
    const char *out;
    const char *nonce_out;
    uint8_t user_data[CSV_USER_DATA_LEN];
    uint8_t mnonce[CSV_MNONCE_LEN];
    struct csv_request_params params;
};

static unsigned parse_hc(const char *usage, const char *text)
{
    char *end = NULL;
    unsigned long nr = strtoul(text, &end, 10);
    if (!*text || *end || (nr != 100 && nr != 12))
        tool_usage_error(usage, "--hc: expected 100 (current Hygon kernels) or 12 (early ones), got \"%s\"", text);
    return (unsigned)nr;
}

static const char *usage_for(enum tool_transport transport, int want_key)
{
    if (want_key)
        return transport == TRANSPORT_IOCTL ? "[--device /dev/csv-guest] [--out KEYFILE]"
                                            : "[--hc 100|12] [--out KEYFILE]";
    return transport == TRANSPORT_IOCTL
               ? "[--device /dev/csv-guest] [--out report.cert] [--nonce-out nonce.bin] "
                 "[--user-data HEX | --user-data-file F] [--mnonce HEX] [--extended v2|v3]"
               : "[--out report.cert] [--nonce-out nonce.bin] [--user-data HEX | --user-data-file F] "
                 "[--mnonce HEX] [--hc 100|12]";
}

/* Options that make sense for this tool; anything else is a usage error naming the option. */
static int option_allowed(int opt, enum tool_transport transport, int want_key)
{
    switch (opt) {
    case OPT_OUT: return 1;
    case OPT_DEVICE: return transport == TRANSPORT_IOCTL;
    case OPT_HC: return transport == TRANSPORT_VMMCALL;
    case OPT_EXTENDED: return transport == TRANSPORT_IOCTL && !want_key;
    default: return !want_key;
    }
}

static void parse_args(int argc, char **argv, enum tool_transport transport, int want_key, struct collect_args *a)
{
    const char *usage = usage_for(transport, want_key);
    int have_user_data = 0;
    const char *env_hc = getenv("KVM_HC_VM_ATTESTATION");
    memset(a, 0, sizeof(*a));
    a->out = want_key ? NULL : "report.cert";
    a->nonce_out = "nonce.bin";
    if (transport == TRANSPORT_VMMCALL && env_hc && *env_hc)
        a->params.hypercall_nr = parse_hc(usage, env_hc);

    int opt;
    while ((opt = getopt_long(argc, argv, "h", report_options, NULL)) != -1) {
        if (opt == 'h') {
            printf("usage: %s %s\n", tool_name, usage);
            exit(EXIT_OK);
        }
        if (opt == '?')
            tool_usage_error(usage, "unknown option or missing value");
        if (!option_allowed(opt, transport, want_key))
            tool_usage_error(usage, "option %s does not apply to %s", argv[optind - 1], tool_name);
        switch (opt) {
        case OPT_OUT: a->out = optarg; break;
        case OPT_NONCE_OUT: a->nonce_out = optarg; break;
        case OPT_DEVICE: a->params.device = optarg; break;
        case OPT_HC: a->params.hypercall_nr = parse_hc(usage, optarg); break;
        case OPT_USER_DATA:
        case OPT_USER_DATA_FILE: {
            if (have_user_data++)
                tool_usage_error(usage, "give user data once (--user-data HEX or --user-data-file F)");
            char at_path[4096];
            snprintf(at_path, sizeof(at_path), "@%s", optarg);
            a->params.user_data_len = (unsigned)tool_hex_or_file(
                opt == OPT_USER_DATA ? "--user-data" : "--user-data-file", usage,
                opt == OPT_USER_DATA ? optarg : at_path, a->user_data, sizeof(a->user_data));
            a->params.user_data = a->user_data;
            break;
        }
        case OPT_MNONCE:
            if (tool_parse_hex(optarg, a->mnonce, sizeof(a->mnonce)) != CSV_MNONCE_LEN)
                tool_usage_error(usage, "--mnonce: expected 32 hex digits (16 bytes), got \"%.80s\"", optarg);
            a->params.mnonce = a->mnonce;
            break;
        case OPT_EXTENDED:
            if (strcmp(optarg, "v2") == 0)
                a->params.ext_flags = CSV_EXT_V2;
            else if (strcmp(optarg, "v3") == 0)
                a->params.ext_flags = CSV_EXT_V3;
            else
                tool_usage_error(usage, "--extended: expected v2 or v3, got \"%s\"", optarg);
            break;
        }
    }
    if (optind < argc)
        tool_usage_error(usage, "unexpected argument \"%s\"", argv[optind]);
}

static int collect_report(enum tool_transport transport, struct collect_args *a)
{
    static uint8_t report[CSV_PAGE_LEN];
    struct csv_report_info info;
    int st = transport == TRANSPORT_IOCTL
                 ? ioctl_get_attestation_report_ex(report, sizeof(report), &a->params, &info)
                 : vmmcall_get_attestation_report_ex(report, sizeof(report), &a->params, &info);
    if (st != CSV_OK)
        tool_die(EXIT_INPUT, "%s", csv_last_error());
    if (tool_write_file(a->out, report, info.report_len, 0644) != 0)
        tool_die(EXIT_INPUT, "cannot write the report to %s: %s", a->out, strerror(errno));
    if (tool_write_file(a->nonce_out, info.mnonce, CSV_MNONCE_LEN, 0644) != 0)
        tool_die(EXIT_INPUT, "cannot write the mnonce to %s: %s", a->nonce_out, strerror(errno));

    char mnonce_hex[2 * CSV_MNONCE_LEN + 1];
    tool_hex(info.mnonce, CSV_MNONCE_LEN, mnonce_hex);
    printf("%s: %s report, %u bytes; mnonce echo and MAC checked, sealing-key field blanked\n", a->out,
           info.version == 1 ? "V1" : "V2/V3", info.report_len);
    printf("%s: mnonce %s\n", a->nonce_out, mnonce_hex);
    if (a->params.ext_flags != CSV_EXT_NONE && info.version == 1)
        printf("note: an extended report was requested but the driver returned V1 (CSV1/CSV2 guest or older driver)\n");
    return EXIT_OK;
}

static int collect_key(enum tool_transport transport, struct collect_args *a)
{
    uint8_t key[CSV_SEALING_KEY_LEN];
    char key_hex[2 * CSV_SEALING_KEY_LEN + 1];
    int st = transport == TRANSPORT_IOCTL ? ioctl_get_sealing_key_ex(key, sizeof(key), &a->params)
                                          : vmmcall_get_sealing_key_ex(key, sizeof(key), &a->params);
    if (st != CSV_OK)
        tool_die(EXIT_INPUT, "%s", csv_last_error());
    if (a->out) {
        int written = tool_write_file(a->out, key, sizeof(key), 0600) == 0;
        int err = errno;
        explicit_bzero(key, sizeof(key));
        if (!written)
            tool_die(EXIT_INPUT, "cannot write the key to %s: %s", a->out, strerror(err));
        fprintf(stderr, "%s: sealing key written to %s (32 raw bytes, mode 0600)\n", tool_name, a->out);
    } else {
        tool_hex(key, sizeof(key), key_hex);
        printf("%s\n", key_hex);
        fflush(stdout);
        explicit_bzero(key_hex, sizeof(key_hex));
    }
    explicit_bzero(key, sizeof(key));
    return EXIT_OK;
}

int collect_tool_main(int argc, char **argv, const char *name, enum tool_transport transport, int want_key)
{
    struct collect_args args;
    tool_init(name);
    parse_args(argc, argv, transport, want_key, &args);
    return want_key ? collect_key(transport, &args) : collect_report(transport, &args);
}
