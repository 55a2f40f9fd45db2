/*
 * csv_sdk.h - guest-side SDK for Hygon CSV attestation (libcsv).
 *
 * The five entry points of the original Hygon devkit SDK keep their names, arguments and meaning:
 * they return 0 on success and a negative csv_status code on failure (never a bare -1 for
 * everything; csv_strerror() names each code and csv_last_error() gives the detail of the last
 * failure in the calling thread). The *_ex variants take user data, a caller-chosen mnonce and
 * extended-report flags.
 *
 * Every function that collects a report checks the mnonce echo and the firmware MAC, then zeroes
 * the sealing-key field before the report reaches the caller. The sealing key is returned only by
 * the *_sealing_key functions.
 *
 * The vmmcall functions temporarily install SIGILL and SIGSEGV handlers around the hypercall
 * instruction (to report "not a CSV guest" instead of crashing); do not call them concurrently with
 * code that relies on its own handlers for those signals.
 */
#ifndef CSV_SDK_H
#define CSV_SDK_H

#ifdef __cplusplus
extern "C" {
#endif

#define CSV_USER_DATA_LEN 64
#define CSV_MNONCE_LEN 16
#define CSV_REQUEST_LEN 112        /* user data 64 || mnonce 16 || SM3(user data || mnonce) 32 */
#define CSV_REQUEST_EXT_LEN 132    /* plus "ATTESTATION_EXT\0" and a u32 flags word */
#define CSV_REPORT_V1_LEN 2548
#define CSV_REPORT_EXT_LEN 3380    /* V2 and V3 */
#define CSV_PAGE_LEN 4096
#define CSV_SEALING_KEY_LEN 32
#define CSV_DEFAULT_DEVICE "/dev/csv-guest"
#define CSV_HC_VM_ATTESTATION 100  /* 12 on early Hygon kernels */

/* Extended-report flags (CSV3 guests with the csv-guest driver). */
#define CSV_EXT_NONE 0u            /* V1 report */
#define CSV_EXT_V2 1u              /* bit 0: TEE info with firmware build and RTMRs */
#define CSV_EXT_V3 3u              /* bit 0 | bit 1: V2 plus host_data */

enum csv_status {
    CSV_OK = 0,
    CSV_ERR_INVALID_ARGUMENT = -1,  /* NULL pointer, bad length or bad flag */
    CSV_ERR_BUFFER_TOO_SMALL = -2,  /* caller buffer shorter than the result */
    CSV_ERR_NO_MEMORY = -3,
    CSV_ERR_RANDOM = -4,            /* getrandom() failed */
    CSV_ERR_CRYPTO = -5,            /* libcrypto failed internally (not a verification failure) */
    CSV_ERR_MLOCK = -6,             /* the request page could not be locked in memory */
    CSV_ERR_PAGEMAP = -7,           /* /proc/self/pagemap unreadable */
    CSV_ERR_PAGEMAP_NO_PFN = -8,    /* pagemap hides the frame number: needs CAP_SYS_ADMIN */
    CSV_ERR_PAGE_NOT_PRESENT = -9,  /* the locked page is not present (or swapped) */
    CSV_ERR_NOT_CSV_GUEST = -10,    /* vmmcall trapped or the host says this VM is not CSV */
    CSV_ERR_HYPERCALL = -11,        /* the host or firmware returned an error for the hypercall */
    CSV_ERR_NO_DEVICE = -12,        /* the csv-guest device node does not exist */
    CSV_ERR_DEVICE_ACCESS = -13,    /* the device exists but cannot be opened */
    CSV_ERR_IOCTL = -14,            /* the driver rejected the request */
    CSV_ERR_MNONCE_MISMATCH = -15,  /* the report does not echo the mnonce that was sent */
    CSV_ERR_MAC_MISMATCH = -16,     /* the firmware MAC over the signer block does not match */
    CSV_ERR_UNSUPPORTED = -17,      /* combination not supported by this path */
    CSV_ERR_REPORT_FORMAT = -18,    /* bytes are not a report of a known layout */
    CSV_ERR_COLLATERAL = -19,       /* HSK/CEK (or a trust root) missing or malformed */
    CSV_ERR_SIGNATURE = -20,        /* a signature, key or chain-link check failed */
    CSV_ERR_UNTRUSTED_ROOT = -21,   /* the chain ends in a root that is neither pinned nor given */
    CSV_ERR_EXPECTATION = -22,      /* report_data, mnonce or measure differ from the expected */
};

/* A short, fixed description of a status code ("unknown status" for others). */
const char *csv_strerror(int status);

/* One line describing the last failure of an SDK call in this thread (what, where, what to do). */
const char *csv_last_error(void);

/* ---- The original devkit entry points ---- */

/* Collect a V1 report through the user-space vmmcall (needs CAP_SYS_ADMIN for pagemap).
 * User data is "user data" as in the devkit; the mnonce is random. buf_len >= 2548; the report
 * (sealing key zeroed) fills the first 2548 bytes. */
int vmmcall_get_attestation_report(unsigned char *report_buf, unsigned int buf_len);

/* The same through the csv-guest driver (/dev/csv-guest). */
int ioctl_get_attestation_report(unsigned char *report_buf, unsigned int buf_len);

/* Verify a report offline. verify_chain = 1: pinned HRK -> HSK -> CEK -> PEK -> report, with HSK
 * and CEK read from the first that exists of ./<chip>_hsk_cek.cert, ./hsk_cek.cert,
 * /opt/hygon/csv/hsk_cek/<chip>/hsk_cek.cert, /opt/csv/hsk_cek/<chip>/hsk_cek.cert (no download).
 * verify_chain = 0: only the report's own PEK signature (this proves nothing about Hygon). */
int verify_attestation_report(unsigned char *report_buf, unsigned int buf_len, int verify_chain);

/* The 32-byte VM sealing key, after the mnonce and MAC checks; buf_len >= 32. */
int vmmcall_get_sealing_key(unsigned char *key_buf, unsigned int buf_len);
int ioctl_get_sealing_key(unsigned char *key_buf, unsigned int buf_len);

/* ---- Extended variants ---- */

struct csv_request_params {
    const unsigned char *user_data; /* up to 64 bytes, zero padded; NULL = "user data" */
    unsigned int user_data_len;
    const unsigned char *mnonce;    /* 16 bytes; NULL = fresh from getrandom() */
    unsigned int ext_flags;         /* CSV_EXT_NONE, CSV_EXT_V2 or CSV_EXT_V3 (ioctl only) */
    const char *device;             /* ioctl: NULL = CSV_DEFAULT_DEVICE */
    unsigned int hypercall_nr;      /* vmmcall: 0 = CSV_HC_VM_ATTESTATION */
};

struct csv_report_info {
    unsigned int report_len;        /* bytes written: 2548 (V1) or 4096 (V2/V3 page) */
    int version;                    /* 1, or 2 for the V2/V3 layout */
    unsigned char mnonce[CSV_MNONCE_LEN]; /* the mnonce that was sent (and echoed) */
};

/* params may be NULL (defaults); info may be NULL. buf_len >= 2548, >= 4096 with ext flags. */
int vmmcall_get_attestation_report_ex(unsigned char *report_buf, unsigned int buf_len,
                                      const struct csv_request_params *params,
                                      struct csv_report_info *info);
int ioctl_get_attestation_report_ex(unsigned char *report_buf, unsigned int buf_len,
                                    const struct csv_request_params *params,
                                    struct csv_report_info *info);
int vmmcall_get_sealing_key_ex(unsigned char *key_buf, unsigned int buf_len,
                               const struct csv_request_params *params);
int ioctl_get_sealing_key_ex(unsigned char *key_buf, unsigned int buf_len,
                             const struct csv_request_params *params);

enum csv_check_status { CSV_CHECK_PASS, CSV_CHECK_FAIL, CSV_CHECK_SKIP, CSV_CHECK_WARN };

struct csv_check {
    char id[32];                    /* e.g. "chain.hsk", "report.signature", "expect.mnonce" */
    int status;                     /* enum csv_check_status */
    int code;                       /* csv_status of a failure, CSV_OK otherwise */
    char reason[200];
};

#define CSV_MAX_CHECKS 24

struct csv_verify_params {
    int verify_chain;               /* 0: report's own PEK only; 1: full chain from a root */
    const unsigned char *hsk;       /* 832 bytes (needed when verify_chain) */
    unsigned int hsk_len;
    const unsigned char *cek;       /* 2084 bytes (needed when verify_chain) */
    unsigned int cek_len;
    const unsigned char *trust_root; /* optional extra 832-byte root accepted besides the pinned HRK */
    unsigned int trust_root_len;
    const unsigned char *expect_user_data; /* optional, up to 64 bytes, zero padded */
    unsigned int expect_user_data_len;
    const unsigned char *expect_mnonce;    /* optional, 16 bytes */
    const unsigned char *expect_measure;   /* optional, 32 bytes */
};

struct csv_verify_result {
    int version;                    /* 1, or 2 for the V2/V3 layout */
    char chip_id[65];
    unsigned char report_data[CSV_USER_DATA_LEN];
    unsigned char mnonce[CSV_MNONCE_LEN];
    unsigned char measure[32];
    unsigned int policy;
    int anchored_to;                /* where the PEK's chain verified to: 0 nowhere (or not checked),
                                       1 the pinned Hygon HRK, 2 the explicit trust root */
    unsigned int n_checks;
    struct csv_check checks[CSV_MAX_CHECKS];
};

/* Returns CSV_OK when every check passed (warnings allowed), otherwise the most serious failure, in
 * this order: CSV_ERR_SIGNATURE / CSV_ERR_UNTRUSTED_ROOT (forged or broken), CSV_ERR_EXPECTATION
 * (genuine-looking but not the expected report), CSV_ERR_REPORT_FORMAT (not a report),
 * CSV_ERR_COLLATERAL (HSK/CEK missing, or an unusable trust root). result may be NULL. */
int verify_attestation_report_ex(const unsigned char *report_buf, unsigned int buf_len,
                                 const struct csv_verify_params *params,
                                 struct csv_verify_result *result);

/* CSV_OK if `root` is an 832-byte, well-formed, self-signed SM2 root certificate that does not
 * claim the pinned Hygon root's key id with another key; CSV_ERR_COLLATERAL otherwise. */
int csv_check_trust_root(const unsigned char *root, unsigned int len);

#ifdef __cplusplus
}
#endif

#endif /* CSV_SDK_H */
