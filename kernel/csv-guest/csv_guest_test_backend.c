// SPDX-License-Identifier: GPL-2.0-only
/*
 * Test backend for csv-guest, built only by `make TEST_BACKEND=1` or with
 * CONFIG_CSV_GUEST_TEST_BACKEND.
 *
 * A fake firmware: instead of the hypercall, the driver's page is checked the way the host checks
 * it and then overwritten with a report read through request_firmware() from the file named by
 * test_firmware (relative to /lib/firmware). The report is canned, so the test must send the mnonce
 * the report was made for. test_hv_result makes the fake return a given hypervisor status instead,
 * to exercise the driver's status mapping. test_skip_csv_check lets the module load outside a CSV
 * guest. What the fake received is checked (nothing but zeros after the request) and published
 * (test_last_flags, test_last_request), and a request that finds another one inside the fake
 * fails, so a driver that copies too much or forgets its lock fails the test. None of this exists
 * in a normal build.
 */
#define pr_fmt(fmt) "csv-guest: test backend: " fmt

#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/firmware.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/unaligned.h>

#include "csv_guest.h"
#include "csv_guest_uapi.h"

static char *test_firmware;
module_param(test_firmware, charp, 0644);
MODULE_PARM_DESC(test_firmware,
		 "TEST BUILD ONLY: report file under /lib/firmware returned by the fake firmware");

static bool test_skip_csv_check;
module_param(test_skip_csv_check, bool, 0444);
MODULE_PARM_DESC(test_skip_csv_check, "TEST BUILD ONLY: load outside a CSV guest");

static long test_hv_result;
module_param(test_hv_result, long, 0644);
MODULE_PARM_DESC(test_hv_result,
		 "TEST BUILD ONLY: if non-zero, the hypervisor status the fake returns");

/* What the fake firmware last received: -1 plain request, else the extended flags word. */
static int test_last_flags = -1;
module_param(test_last_flags, int, 0444);
MODULE_PARM_DESC(test_last_flags,
		 "TEST BUILD ONLY: flags of the last extended request (-1: plain request)");

/* The request part of the last page the fake received (132 bytes), as hex. */
static char test_last_request[2 * CSV_ATTESTATION_USER_DATA_EXT_LEN + 1];
module_param_string(test_last_request, test_last_request, sizeof(test_last_request), 0444);
MODULE_PARM_DESC(test_last_request,
		 "TEST BUILD ONLY: bytes 0..131 of the last page the fake firmware received, hex");

/* Requests inside the fake right now; the driver's lock must keep it at one. */
static atomic_t csv_test_in_flight = ATOMIC_INIT(0);
/* Long enough for a second caller to get in if the driver does not serialise requests. */
#define CSV_TEST_DWELL_MS 2
/* What the fake answers a request that overlapped another: no other case uses this status. */
#define CSV_TEST_OVERLAP_STATUS (-EBUSY)

/* A copy of test_firmware without surrounding whitespace (`echo name > .../test_firmware` adds a
 * newline), or NULL when it is unset or blank. */
static char *csv_test_firmware_name(void)
{
	char *copy, *name;

	kernel_param_lock(THIS_MODULE);
	copy = test_firmware ? kstrdup(test_firmware, GFP_KERNEL) : NULL;
	kernel_param_unlock(THIS_MODULE);
	if (!copy)
		return NULL;
	name = strim(copy);
	if (!*name) {
		kfree(copy);
		return NULL;
	}
	memmove(copy, name, strlen(name) + 1);
	return copy;
}

bool csv_test_backend_active(void)
{
	char *name = csv_test_firmware_name();
	bool active = name != NULL;

	kfree(name);
	return active;
}

bool csv_test_backend_skip_platform_check(void)
{
	return test_skip_csv_check;
}

/* The length of the request the driver handed over, or 0 if bytes after it are not zero. */
static unsigned int csv_test_request_len(const u8 *buf, unsigned int len)
{
	unsigned int req_len = CSV_REPORT_INPUT_DATA_LEN;

	test_last_flags = -1;
	if (!memcmp(buf + CSV_ATTESTATION_MAGIC_OFFSET, CSV_ATTESTATION_MAGIC,
		    CSV_ATTESTATION_MAGIC_LEN)) {
		req_len = CSV_ATTESTATION_USER_DATA_EXT_LEN;
		test_last_flags = get_unaligned_le32(buf + CSV_ATTESTATION_FLAGS_OFFSET);
	}
	return memchr_inv(buf + req_len, 0, len - req_len) ? 0 : req_len;
}

static void csv_test_record_request(const u8 *buf)
{
	char *end;

	kernel_param_lock(THIS_MODULE);
	end = bin2hex(test_last_request, buf, CSV_ATTESTATION_USER_DATA_EXT_LEN);
	*end = '\0';
	kernel_param_unlock(THIS_MODULE);
}

static long csv_test_fake_firmware(struct device *dev, u8 *buf, unsigned int len)
{
	const struct firmware *fw;
	char *name;
	long ret;

	/* The host's checks (Hygon KVM csv_vm_attestation): page-aligned, non-zero, whole pages. */
	if (!buf || !PAGE_ALIGNED(buf) || !len || len % PAGE_SIZE)
		return -EFAULT;
	csv_test_record_request(buf);
	if (!csv_test_request_len(buf, len)) {
		pr_warn("the page holds more than the request (bytes after it are not zero)\n");
		return -EINVAL;
	}
	if (test_hv_result)
		return test_hv_result;

	name = csv_test_firmware_name();
	if (!name)
		return -EIO;
	ret = request_firmware_direct(&fw, name, dev);
	if (ret) {
		pr_warn("cannot read the report file %s (error %ld)\n", name, ret);
		kfree(name);
		return -EIO;
	}
	if (fw->size < CSV_REPORT_INPUT_DATA_LEN || fw->size > len) {
		pr_warn("report file %s has %zu bytes; expected %d to %u\n", name, fw->size,
			CSV_REPORT_INPUT_DATA_LEN, len);
		ret = -EIO;
	} else {
		memcpy(buf, fw->data, fw->size);
		ret = 0;
	}
	release_firmware(fw);
	kfree(name);
	return ret;
}

long csv_test_backend_attest(struct device *dev, u8 *buf, unsigned int len)
{
	bool overlap = atomic_inc_return(&csv_test_in_flight) != 1;
	long ret;

	msleep(CSV_TEST_DWELL_MS);
	overlap |= atomic_read(&csv_test_in_flight) != 1;
	if (overlap) {
		pr_warn_ratelimited("two requests in the fake firmware at once: the driver does not serialise them\n");
		ret = CSV_TEST_OVERLAP_STATUS;
	} else {
		ret = csv_test_fake_firmware(dev, buf, len);
	}
	atomic_dec(&csv_test_in_flight);
	return ret;
}
