// SPDX-License-Identifier: GPL-2.0-only
/*
 * csv-guest-probe: exercises /dev/csv-guest with bad and good arguments and prints one line
 * per case,
 *   CASE <case> errno=<n> <NAME> [match=0|1]
 * for tests/kernel to check. Linked statically so it runs from a bare initramfs.
 *
 * Cases: short-len zero-len negative-len partial-page-len two-page-len huge-len null-ptr bad-ptr
 * bad-arg unknown-cmd rtmr-cmd compat32-cmd ext-unknown-flags ext-host-data-only readonly-buf
 * plain roundtrip:FILE legacy-roundtrip:FILE concurrent:FILE hv:STATUS
 * (FILE is the report the test backend answers with; hv:STATUS sets the test backend's simulated
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
#define PAGE 4096

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

static int roundtrip(const char *file, int legacy)
{
	static uint8_t expected[PAGE];
	uint8_t *buf = page_buf(PROT_READ | PROT_WRITE);
	int err;
	load_expected(file, expected);
	fill_request(buf);
	if (legacy) {
		struct csv_guest_mem mem = {.va = (unsigned long)buf, .size = PAGE};
		err = raw_ioctl(DEVKIT_GET_ATTESTATION_REPORT, &mem);
	} else {
		err = get_report(buf, PAGE);
	}
	int match = !err && memcmp(buf, expected, PAGE) == 0;
	munmap(buf, PAGE);
	return err ? -err : match;
}

/* Several processes at once: every request must succeed and return the exact report. */
static void concurrent(const char *name, const char *file)
{
	enum { WORKERS = 4, ROUNDS = 25 };
	pid_t pids[WORKERS];
	int failures = 0, first_err = 0;
	for (int w = 0; w < WORKERS; w++) {
		pids[w] = fork();
		if (pids[w] == 0) {
			for (int r = 0; r < ROUNDS; r++) {
				int res = roundtrip(file, r & 1);
				if (res != 1)
					_exit(res < 0 ? -res : 255);
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
	} else if (!strcmp(base, "roundtrip") || !strcmp(base, "legacy-roundtrip")) {
		int res = roundtrip(arg, base[0] == 'l');
		report(name, res < 0 ? -res : 0, res == 1);
	} else if (!strcmp(base, "concurrent"))
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
