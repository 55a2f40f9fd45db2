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
 * guest. None of this exists in a normal build.
 */
#define pr_fmt(fmt) "csv-guest: test backend: " fmt

#include <linux/firmware.h>
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

long csv_test_backend_attest(struct device *dev, u8 *buf, unsigned int len)
{
	const struct firmware *fw;
	char *name;
	long ret;

	/* The host's checks (Hygon KVM csv_vm_attestation): page-aligned, non-zero, whole pages. */
	if (!buf || !PAGE_ALIGNED(buf) || !len || len % PAGE_SIZE)
		return -EFAULT;
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
