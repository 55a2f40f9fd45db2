/* Helpers shared by the command-line tools: errors, hex, files. */
#ifndef CSV_TOOL_COMMON_H
#define CSV_TOOL_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit classes shared with the Python verifier. */
enum { EXIT_OK = 0, EXIT_INPUT = 1, EXIT_USAGE = 2, EXIT_SIGNATURE = 3, EXIT_COLLATERAL = 4, EXIT_EXPECTATION = 5 };

extern const char *tool_name;

/* Name the tool and keep libcrypto from reading openssl.cnf (a static binary must not dlopen
 * providers named in a foreign configuration). */
void tool_init(const char *name);

/* Print "<tool>: error: <message>" on one line to stderr and exit with `code`. */
void tool_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));
void tool_usage_error(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Decode hex (optional 0x prefix) into at most `max` bytes; -1 if malformed or too long. */
ssize_t tool_parse_hex(const char *text, uint8_t *out, size_t max);
void tool_hex(const uint8_t *p, size_t n, char *out);

/* Read a whole regular file of at most `max` bytes; -1 with errno (EFBIG when larger, EISDIR for a
 * directory, ESPIPE for anything else that is not a regular file). */
ssize_t tool_read_file(const char *path, uint8_t *out, size_t max);
const char *tool_read_problem(int err); /* the reason for one of tool_read_file's errno values */
/* Create or truncate `path` with exactly `mode` (also when it already exists); 0 or -1 with errno. */
int tool_write_file(const char *path, const uint8_t *data, size_t len, mode_t mode);

/* HEX or @FILE (raw bytes) into at most `max` bytes; exits with a usage error naming `option`. */
size_t tool_hex_or_file(const char *option, const char *usage, const char *value, uint8_t *out, size_t max);

#endif
