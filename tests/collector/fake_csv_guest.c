/* LD_PRELOAD stand-in for the csv-guest driver, for tests of the dynamically linked tools.
 *
 * Intercepts ioctl(GET_REPORT = 0xC0104401): checks the buffer is one page-aligned 4096-byte page,
 * saves the request page to $FAKE_CSV_REQUEST_OUT, then writes the canned answer
 * $FAKE_CSV_RESPONSE (a V1 report file) at offset 0. With $FAKE_CSV_ECHO set, the answer is made
 * to fit the request like firmware would: the mnonce sent is echoed (obfuscated with the report's
 * anonce) and the MAC recomputed (the report signature then no longer verifies, which the key tools
 * do not check). $FAKE_CSV_FLIP=N XORs byte N of the answer with 0x01 last. Every other ioctl goes to
 * the real libc. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

struct csv_report_req {
    uint64_t buffer;
    int32_t length;
    uint32_t pad;
};

static void echo_request(uint8_t *page, const uint8_t mnonce[16])
{
    const uint8_t *anonce = page + 188;
    for (int i = 0; i < 16; i++)
        page[128 + i] = mnonce[i] ^ anonce[(128 + i) % 4];
    unsigned int len = 0;
    if (!HMAC(EVP_sm3(), mnonce, 16, page + 336, 2516 - 336, page + 2516, &len))
        abort();
}

static int fake_get_report(struct csv_report_req *req)
{
    uint8_t *page = (uint8_t *)(uintptr_t)req->buffer;
    const char *response = getenv("FAKE_CSV_RESPONSE");
    const char *request_out = getenv("FAKE_CSV_REQUEST_OUT");
    const char *flip = getenv("FAKE_CSV_FLIP");
    if (!page || req->length != 4096 || ((uintptr_t)page & 4095)) {
        errno = EINVAL;
        return -1;
    }
    if (request_out) {
        FILE *f = fopen(request_out, "wb");
        if (!f || fwrite(page, 1, 4096, f) != 4096)
            abort();
        fclose(f);
    }
    uint8_t mnonce[16];
    memcpy(mnonce, page + 64, sizeof(mnonce));
    FILE *f = response ? fopen(response, "rb") : NULL;
    if (!f) {
        errno = EIO;
        return -1;
    }
    size_t n = fread(page, 1, 4096, f);
    fclose(f);
    if (getenv("FAKE_CSV_ECHO"))
        echo_request(page, mnonce);
    if (flip && (size_t)atol(flip) < n)
        page[atol(flip)] ^= 0x01;
    return 0;
}

int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    if (request == 0xC0104401UL)
        return fake_get_report(arg);
    int (*real_ioctl)(int, unsigned long, ...) = (int (*)(int, unsigned long, ...))dlsym(RTLD_NEXT, "ioctl");
    return real_ioctl(fd, request, arg);
}
