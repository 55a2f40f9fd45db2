// SPDX-License-Identifier: GPL-2.0-only
/*
 * csv-guest-probe: exercises /dev/csv-guest with bad and good arguments and prints one line
 * per case,
 *   CASE <case> errno=<n> <NAME> [match=0|1 [request=0|1]]
 * for tests/kernel to check. Linked statically so it runs from a bare initramfs. For round trips,
 * match says the page came back as the report file, request that the fake firmware received
 * exactly the request (test_last_request; bytes 112..131 zero unless the extended magic is there).
 *
 * Cases: short-len zero-len negative-len partial-page-len two-page-len huge-len null-ptr bad-ptr
 * bad-arg unknown-cmd rtmr-cmd compat32-cmd ext-unknown-flags ext-host-data-only readonly-buf
 * plain roundtrip:FILE legacy-roundtrip:FILE dirty-tail-roundtrip:FILE
 * dirty-ext-area-roundtrip:FILE ext-dirty-tail-roundtrip:FILE concurrent:FILE hv:STATUS
 * (FILE is the report the test backend answers with; the dirty cases fill the page outside the
 * request with 0xAA, which the driver must not pass on; hv:STATUS sets the test backend's simulated
 * hypervisor status for one request.)
 *
 * csv-guest-probe insmod NAME MODULE [PARAMS] loads a module with exactly one finit_module() call
 * (busybox insmod retries with init_module(), which would log twice) and prints
 *   LOAD <NAME> rc=<errno> <NAME>
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../csv-guest/csv_guest_uapi.h"

#define DEVICE "/dev/csv-guest"
#define HV_PARAM "/sys/module/csv_guest/parameters/test_hv_result"
#define LAST_REQUEST_PARAM "/sys/module/csv_guest/parameters/test_last_request"
#define PAGE 4096
#define REQ CSV_REPORT_INPUT_DATA_LEN              /* 112 */
#define EXT_REQ CSV_ATTESTATION_USER_DATA_EXT_LEN /* 132 */
#define DIRT 0xAA

/* The devkit's own struct, declared independently: the same ABI under the legacy names. */
struct csv_guest_mem {
	unsigned long va;
	int size;
};
#define DEVKIT_GET_ATTESTATION_REPORT _IOWR('D', 1, struct csv_guest_mem)
_Static_assert(DEVKIT_GET_ATTESTATION_REPORT == 0xC0104401u, "devkit request number");
_Static_assert(CSV_CMD_GET_REPORT == 0xC0104401u, "upstream request number");

static int dev_fd;

static void report(const char *name, int err, int match)
{
	const char *ename = err ? strerrorname_np(err) : "OK";
	if (match < 0)
		printf("CASE %s errno=%d %s\n", name, err, ename ? ename : "?");
	else
		printf("CASE %s errno=%d %s match=%d\n", name, err, ename ? ename : "?", match);
	fflush(stdout);
}

static int get_report(void *buf, int32_t len)
{
	struct csv_report_req req = {.report_data = (uint64_t)(uintptr_t)buf, .len = len};
	return ioctl(dev_fd, CSV_CMD_GET_REPORT, &req) < 0 ? errno : 0;
}

static int raw_ioctl(unsigned long cmd, void *arg)
{
	return ioctl(dev_fd, cmd, arg) < 0 ? errno : 0;
}

static void *page_buf(int prot)
{
	void *p = mmap(NULL, PAGE, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		perror("mmap");
		exit(2);
	}
	return p;
}

/* A plain 112-byte request; the canned report ignores its content. */
static void fill_request(uint8_t *buf)
{
	memset(buf, 0, PAGE);
	memcpy(buf, "csv-guest-probe", 15);
}

static void fill_ext_request(uint8_t *buf, uint32_t flags)
{
	fill_request(buf);
	memcpy(buf + CSV_REPORT_INPUT_DATA_LEN, CSV_ATTESTATION_MAGIC, CSV_ATTESTATION_MAGIC_LEN);
	memcpy(buf + CSV_REPORT_INPUT_DATA_LEN + CSV_ATTESTATION_MAGIC_LEN, &flags, sizeof(flags));
}

/* What a page holds besides the request when it is sent. */
enum fill {
	FILL_CLEAN,          /* zeros */
	FILL_DIRTY_TAIL,     /* 0xAA in 132..4095 */
	FILL_DIRTY_EXT_AREA, /* 0xAA in 112..131, no extended magic */
	FILL_EXT_DIRTY_TAIL, /* an extended (V2) request, 0xAA in 132..4095 */
};

static void fill_page(uint8_t *buf, enum fill fill)
{
	if (fill == FILL_EXT_DIRTY_TAIL)
		fill_ext_request(buf, CSV_ATTESTATION_FLAG_REPORT_EXT);
	else
		fill_request(buf);
	if (fill == FILL_DIRTY_TAIL || fill == FILL_EXT_DIRTY_TAIL)
		memset(buf + EXT_REQ, DIRT, PAGE - EXT_REQ);
	if (fill == FILL_DIRTY_EXT_AREA)
		memset(buf + REQ, DIRT, EXT_REQ - REQ);
}

/* The request the firmware must get from a page: 132 bytes with the extended magic, else 112 and
 * zeros (the driver copies in only the request). */
static void request_of(const uint8_t *page, uint8_t out[EXT_REQ])
{
	memcpy(out, page, EXT_REQ);
	if (memcmp(page + REQ, CSV_ATTESTATION_MAGIC, CSV_ATTESTATION_MAGIC_LEN) != 0)
		memset(out + REQ, 0, EXT_REQ - REQ);
}

/* 1 if the fake firmware's record of the last request it received equals `want`. */
static int firmware_received(const uint8_t want[EXT_REQ])
{
	char hex[2 * EXT_REQ + 2] = {0};
	FILE *f = fopen(LAST_REQUEST_PARAM, "r");
	if (!f) {
		perror(LAST_REQUEST_PARAM);
		exit(2);
	}
	size_t n = fread(hex, 1, sizeof(hex) - 1, f);
	fclose(f);
	if (n < 2 * EXT_REQ)
		return 0;
	for (size_t i = 0; i < EXT_REQ; i++) {
		unsigned int byte;
		if (sscanf(hex + 2 * i, "%2x", &byte) != 1 || byte != want[i])
			return 0;
	}
	return 1;
}

/* The expected page: the report file, then zeros up to the page end. */
static void load_expected(const char *path, uint8_t *out)
{
	memset(out, 0, PAGE);
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(2);
	}
	size_t n = fread(out, 1, PAGE, f);
	fclose(f);
	if (n == 0) {
		fprintf(stderr, "%s: empty\n", path);
		exit(2);
	}
}

struct outcome {
	int err;
	int match;   /* the page came back as the report file */
	int request; /* the fake firmware received exactly the request */
};

static struct outcome roundtrip(const char *file, int legacy, enum fill fill)
{
	static uint8_t expected[PAGE];
	uint8_t sent[EXT_REQ];
	uint8_t *buf = page_buf(PROT_READ | PROT_WRITE);
	struct outcome out = {0};
	load_expected(file, expected);
	fill_page(buf, fill);
	request_of(buf, sent);
	if (legacy) {
		struct csv_guest_mem mem = {.va = (unsigned long)buf, .size = PAGE};
		out.err = raw_ioctl(DEVKIT_GET_ATTESTATION_REPORT, &mem);
	} else {
		out.err = get_report(buf, PAGE);
	}
	out.match = !out.err && memcmp(buf, expected, PAGE) == 0;
	out.request = !out.err && firmware_received(sent);
	munmap(buf, PAGE);
	return out;
}

static void report_roundtrip(const char *name, struct outcome o)
{
	const char *ename = o.err ? strerrorname_np(o.err) : "OK";
	printf("CASE %s errno=%d %s match=%d request=%d\n", name, o.err, ename ? ename : "?", o.match,
		   o.request);
	fflush(stdout);
}

/* Several processes at once (the fake firmware fails a request that finds another one inside it):
 * every request must succeed and return the exact report. What the firmware received is checked by the
 * single-process round trips: here another process's request may have replaced it by the time it is read. */
static void concurrent(const char *name, const char *file)
{
	enum { WORKERS = 4, ROUNDS = 25 };
	pid_t pids[WORKERS];
	int failures = 0, first_err = 0;
	for (int w = 0; w < WORKERS; w++) {
		pids[w] = fork();
		if (pids[w] == 0) {
			for (int r = 0; r < ROUNDS; r++) {
				struct outcome o = roundtrip(file, r & 1, FILL_CLEAN);
				if (o.err)
					_exit(o.err);
				if (!o.match)
					_exit(255);
			}
			_exit(0);
		}
	}
	for (int w = 0; w < WORKERS; w++) {
		int status = 0;
		waitpid(pids[w], &status, 0);
		int code = WIFEXITED(status) ? WEXITSTATUS(status) : 254;
		if (code) {
			failures++;
			if (!first_err)
				first_err = code == 255 || code == 254 ? EBADMSG : code;
		}
	}
	report(name, first_err, failures == 0);
}

static void set_hv_status(const char *value)
{
	FILE *f = fopen(HV_PARAM, "w");
	if (!f || fputs(value, f) < 0 || fclose(f) != 0) {
		perror(HV_PARAM);
		exit(2);
	}
}

static void run_case(const char *name)
{
	const char *colon = strchr(name, ':');
	const char *arg = colon ? colon + 1 : "";
	size_t base_len = colon ? (size_t)(colon - name) : strlen(name);
	char base[32];
	snprintf(base, sizeof(base), "%.*s", (int)base_len, name);
	uint8_t *buf = page_buf(PROT_READ | PROT_WRITE);
	fill_request(buf);

	if (!strcmp(base, "short-len"))
		report(name, get_report(buf, CSV_REPORT_INPUT_DATA_LEN - 1), -1);
	else if (!strcmp(base, "zero-len"))
		report(name, get_report(buf, 0), -1);
	else if (!strcmp(base, "negative-len"))
		report(name, get_report(buf, -PAGE), -1);
	else if (!strcmp(base, "partial-page-len"))
		report(name, get_report(buf, 2548), -1);
	else if (!strcmp(base, "two-page-len"))
		report(name, get_report(buf, 2 * PAGE), -1);
	else if (!strcmp(base, "huge-len"))
		report(name, get_report(buf, 1 << 30), -1);
	else if (!strcmp(base, "null-ptr"))
		report(name, get_report(NULL, PAGE), -1);
	else if (!strcmp(base, "bad-ptr")) {
		void *gone = page_buf(PROT_READ | PROT_WRITE);
		munmap(gone, PAGE);
		report(name, get_report(gone, PAGE), -1);
	} else if (!strcmp(base, "bad-arg"))
		report(name, raw_ioctl(CSV_CMD_GET_REPORT, (void *)8), -1);
	else if (!strcmp(base, "unknown-cmd"))
		report(name, raw_ioctl(_IOWR('D', 3, struct csv_report_req), buf), -1);
	else if (!strcmp(base, "rtmr-cmd"))
		report(name, raw_ioctl(0xC0184402u, buf), -1);
	else if (!strcmp(base, "compat32-cmd"))
		report(name, raw_ioctl(0xC0084401u, buf), -1);
	else if (!strcmp(base, "ext-unknown-flags")) {
		fill_ext_request(buf, 1u << 2);
		report(name, get_report(buf, PAGE), -1);
	} else if (!strcmp(base, "ext-host-data-only")) {
		fill_ext_request(buf, CSV_ATTESTATION_FLAG_REPORT_EXT_HOST_DATA);
		report(name, get_report(buf, PAGE), -1);
	} else if (!strcmp(base, "readonly-buf")) {
		uint8_t *ro = page_buf(PROT_READ);
		report(name, get_report(ro, PAGE), -1);
		munmap(ro, PAGE);
	} else if (!strcmp(base, "roundtrip") || !strcmp(base, "legacy-roundtrip"))
		report_roundtrip(name, roundtrip(arg, base[0] == 'l', FILL_CLEAN));
	else if (!strcmp(base, "dirty-tail-roundtrip"))
		report_roundtrip(name, roundtrip(arg, 0, FILL_DIRTY_TAIL));
	else if (!strcmp(base, "dirty-ext-area-roundtrip"))
		report_roundtrip(name, roundtrip(arg, 0, FILL_DIRTY_EXT_AREA));
	else if (!strcmp(base, "ext-dirty-tail-roundtrip"))
		report_roundtrip(name, roundtrip(arg, 0, FILL_EXT_DIRTY_TAIL));
	else if (!strcmp(base, "concurrent"))
		concurrent(name, arg);
	else if (!strcmp(base, "plain"))
		report(name, get_report(buf, PAGE), -1);
	else if (!strcmp(base, "hv")) {
		set_hv_status(arg);
		int err = get_report(buf, PAGE);
		set_hv_status("0");
		report(name, err, -1);
	} else {
		fprintf(stderr, "csv-guest-probe: unknown case \"%s\"\n", name);
		exit(2);
	}
	munmap(buf, PAGE);
}

static int insmod(const char *name, const char *module, const char *params)
{
	int fd = open(module, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "csv-guest-probe: cannot open %s: %s\n", module, strerror(errno));
		return 1;
	}
	int err = syscall(SYS_finit_module, fd, params, 0) ? errno : 0;
	close(fd);
	const char *ename = err ? strerrorname_np(err) : "OK";
	printf("LOAD %s rc=%d %s\n", name, err, ename ? ename : "?");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "insmod"))
		return insmod(argv[2], argv[3], argc > 4 ? argv[4] : "");
	if (argc < 2) {
		fprintf(stderr, "usage: csv-guest-probe CASE...\n");
		return 2;
	}
	dev_fd = open(DEVICE, O_RDONLY | O_CLOEXEC);
	if (dev_fd < 0) {
		fprintf(stderr, "csv-guest-probe: cannot open %s: %s\n", DEVICE, strerror(errno));
		return 1;
	}
	for (int i = 1; i < argc; i++)
		run_case(argv[i]);
	close(dev_fd);
	return 0;
}
