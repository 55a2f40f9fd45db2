#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "tool_common.h"

const char *tool_name = "csv";

void tool_init(const char *name)
{
    tool_name = name;
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG, NULL);
}

void tool_die(int code, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: error: ", tool_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

void tool_usage_error(const char *usage, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "%s: error: ", tool_name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nusage: %s %s\n", tool_name, usage);
    exit(EXIT_USAGE);
}

static int hex_digit(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t tool_parse_hex(const char *text, uint8_t *out, size_t max)
{
    if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
        text += 2;
    size_t n = strlen(text);
    if (n % 2 || n / 2 > max)
        return -1;
    for (size_t i = 0; i < n / 2; i++) {
        int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return (ssize_t)(n / 2);
}

void tool_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
    out[2 * n] = '\0';
}

ssize_t tool_read_file(const char *path, uint8_t *out, size_t max)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    struct stat st = {0};
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        errno = S_ISDIR(st.st_mode) ? EISDIR : ESPIPE;
        return -1;
    }
    size_t n = fread(out, 1, max, f);
    int err = ferror(f) ? EIO : 0;
    if (!err && fgetc(f) != EOF)
        err = EFBIG;
    fclose(f);
    if (err) {
        errno = err;
        return -1;
    }
    return (ssize_t)n;
}

const char *tool_read_problem(int err)
{
    switch (err) {
    case EFBIG: return "file too large";
    case EISDIR: return "is a directory";
    case ESPIPE: return "not a regular file";
    default: return strerror(err);
    }
}

int tool_write_file(const char *path, const uint8_t *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode);
    if (fd < 0)
        return -1;
    if (fchmod(fd, mode) != 0) { /* an existing file keeps its old mode otherwise */
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    size_t done = 0;
    while (done < len) {
        ssize_t n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int err = n < 0 ? errno : EIO;
            close(fd);
            errno = err;
            return -1;
        }
        done += (size_t)n;
    }
    return close(fd);
}

size_t tool_hex_or_file(const char *option, const char *usage, const char *value, uint8_t *out, size_t max)
{
    if (value[0] == '@') {
        ssize_t n = tool_read_file(value + 1, out, max);
        if (n < 0 && errno == EFBIG)
            tool_die(EXIT_INPUT, "%s: %s is larger than %zu bytes, the most this option takes", option, value + 1,
                     max);
        if (n < 0)
            tool_die(EXIT_INPUT, "%s: cannot read %s: %s", option, value + 1, tool_read_problem(errno));
        return (size_t)n;
    }
    ssize_t n = tool_parse_hex(value, out, max);
    if (n < 0)
        tool_usage_error(usage, "%s: expected at most %zu bytes as hex digits (or @FILE), got \"%.80s\"", option, max,
                         value);
    return (size_t)n;
}
