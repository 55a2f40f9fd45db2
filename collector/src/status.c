/* Status codes, their names and the per-thread detail line of the last failure. */
#include <stdarg.h>
#include <stdio.h>

#include "csv_internal.h"

static __thread char last_error[320];

const char *csv_strerror(int status)
{
    switch (status) {
    case CSV_OK: return "success";
    case CSV_ERR_INVALID_ARGUMENT: return "invalid argument";
    case CSV_ERR_BUFFER_TOO_SMALL: return "buffer too small";
    case CSV_ERR_NO_MEMORY: return "out of memory";
    case CSV_ERR_RANDOM: return "no random bytes (getrandom failed)";
    case CSV_ERR_CRYPTO: return "libcrypto internal error";
    case CSV_ERR_MLOCK: return "cannot lock the request page in memory";
    case CSV_ERR_PAGEMAP: return "cannot read /proc/self/pagemap";
    case CSV_ERR_PAGEMAP_NO_PFN:
        return "pagemap hides frame numbers without CAP_SYS_ADMIN; run as root or use the ioctl path";
    case CSV_ERR_PAGE_NOT_PRESENT: return "request page not present in memory";
    case CSV_ERR_NOT_CSV_GUEST: return "not a CSV guest";
    case CSV_ERR_HYPERCALL: return "attestation hypercall failed";
    case CSV_ERR_NO_DEVICE: return "csv-guest device not found";
    case CSV_ERR_DEVICE_ACCESS: return "csv-guest device cannot be opened";
    case CSV_ERR_IOCTL: return "csv-guest driver rejected the request";
    case CSV_ERR_MNONCE_MISMATCH: return "report does not echo the mnonce sent";
    case CSV_ERR_MAC_MISMATCH: return "report MAC does not match";
    case CSV_ERR_UNSUPPORTED: return "not supported on this path";
    case CSV_ERR_REPORT_FORMAT: return "not a CSV attestation report";
    case CSV_ERR_COLLATERAL: return "certificates missing or malformed";
    case CSV_ERR_SIGNATURE: return "signature or chain check failed";
    case CSV_ERR_UNTRUSTED_ROOT: return "chain ends in an untrusted root";
    case CSV_ERR_EXPECTATION: return "report differs from the expected values";
    default: return "unknown status";
    }
}

const char *csv_last_error(void)
{
    return last_error[0] ? last_error : "no error recorded";
}

int csv_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof(last_error), fmt, ap);
    va_end(ap);
    return status;
}
