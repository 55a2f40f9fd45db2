// SPDX-License-Identifier: GPL-2.0-only
/*
 * csv-guest: /dev/csv-guest for Hygon CSV guests.
 *
 * GET_REPORT copies a 112-byte request (or a 132-byte extended one) from userspace into a zeroed,
 * page-aligned kernel page, asks the firmware for an attestation report with the
 * KVM_HC_VM_ATTESTATION hypercall (guest-physical address and length of that page), and copies the
 * page back. The firmware writes the report over the request in the same page.
 *
 * Unlike older drivers this one bounds the length, never passes a raw hypervisor status to
 * userspace, never logs addresses or report bytes, and wipes the page (it holds the VM's sealing
 * key) before freeing it. See kernel/README.md for the ABI and the errno table.
 */
#define pr_fmt(fmt) "csv-guest: " fmt

#include <linux/cc_platform.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/kvm_para.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <asm/processor.h>
#include <asm/unaligned.h>

#include "csv_guest.h"
#include "csv_guest_uapi.h"

/* The firmware handles one request at a time (the lock also covers the test backend's state). */
static DEFINE_MUTEX(csv_firmware_lock);

/* Set once at load: a Hygon CSV guest whose hypervisor offers KVM hypercalls. */
static bool csv_platform;

static struct miscdevice csv_misc;

static bool csv_guest_detected(void)
{
	return boot_cpu_data.x86_vendor == X86_VENDOR_HYGON &&
	       cc_platform_has(CC_ATTR_GUEST_MEM_ENCRYPT) && kvm_para_available();
}

/* The host wants a page-aligned buffer of whole pages; one page is what every caller uses. */
static bool csv_len_valid(s32 len)
{
	return len >= CSV_REPORT_INPUT_DATA_LEN && len <= CSV_REPORT_BUF_LEN &&
	       len % CSV_REPORT_BUF_LEN == 0;
}

/*
 * Hypervisor status -> ioctl result. The host's errnos mean something else to the caller than
 * the same numbers from this ioctl (its -EFAULT is about our page, not the caller's pointer; its
 * -ENOTTY means "not a CSV guest"), and kernel-internal values such as -ERESTARTSYS must never
 * reach userspace, so everything not listed is -EIO.
 */
static long csv_hv_errno(long status)
{
	switch (status) {
	case 0:
		return 0;
	case -KVM_EPERM:	/* the host refused the call */
		return -EPERM;
	case -KVM_ENOSYS:	/* the host's KVM does not know hypercall 100 */
		return -EOPNOTSUPP;
	case -ENOTTY:		/* the host says this VM is not an SEV/CSV guest */
		return -ENODEV;
	case -ENOMEM:		/* the host could not pin the page */
		return -ENOMEM;
	default:		/* firmware failure (-EIO), buffer refused, or out of range */
		return -EIO;
	}
}

static long csv_firmware_call(u8 *buf, unsigned int len)
{
	long status;

	if (csv_test_backend_active())
		status = csv_test_backend_attest(csv_misc.this_device, buf, len);
	else if (csv_platform)
		status = kvm_hypercall2(KVM_HC_VM_ATTESTATION, __pa(buf), len);
	else
		return -ENODEV; /* test build loaded with the override, no fake firmware */

	if (status)
		pr_info_ratelimited("attestation request failed: hypervisor status %ld, returning %ld\n",
				    status, csv_hv_errno(status));
	return csv_hv_errno(status);
}

/*
 * Copy only the request into the zeroed page: 112 bytes, or 132 when the extended magic is present
 * (its flags word selects a V2/V3 report on firmware that supports it).
 */
static long csv_copy_request(u8 *buf, const void __user *ubuf)
{
	u32 flags;

	if (copy_from_user(buf, ubuf, CSV_ATTESTATION_USER_DATA_EXT_LEN))
		return -EFAULT;
	if (memcmp(buf + CSV_ATTESTATION_MAGIC_OFFSET, CSV_ATTESTATION_MAGIC,
		   CSV_ATTESTATION_MAGIC_LEN)) {
		memset(buf + CSV_REPORT_INPUT_DATA_LEN, 0,
		       CSV_ATTESTATION_USER_DATA_EXT_LEN - CSV_REPORT_INPUT_DATA_LEN);
		return 0;
	}
	flags = get_unaligned_le32(buf + CSV_ATTESTATION_FLAGS_OFFSET);
	if (flags & ~CSV_ATTESTATION_FLAGS_KNOWN)
		return -EINVAL;
	/* host_data exists only in the extended layout */
	if ((flags & CSV_ATTESTATION_FLAG_REPORT_EXT_HOST_DATA) &&
	    !(flags & CSV_ATTESTATION_FLAG_REPORT_EXT))
		return -EINVAL;
	return 0;
}

static long csv_get_report(struct csv_report_req __user *argp)
{
	struct csv_report_req req;
	void __user *ubuf;
	u8 *buf;
	long ret;

	if (copy_from_user(&req, argp, sizeof(req)))
		return -EFAULT;
	ubuf = u64_to_user_ptr(req.report_data);
	if (!ubuf || !csv_len_valid(req.len))
		return -EINVAL;

	buf = (u8 *)get_zeroed_page(GFP_KERNEL);
	if (!buf)
		return -ENOMEM;

	ret = csv_copy_request(buf, ubuf);
	if (!ret) {
		ret = mutex_lock_killable(&csv_firmware_lock);
		if (!ret) {
			ret = csv_firmware_call(buf, req.len);
			mutex_unlock(&csv_firmware_lock);
		}
	}
	if (!ret && copy_to_user(ubuf, buf, req.len))
		ret = -EFAULT;

	memzero_explicit(buf, PAGE_SIZE); /* the report carries the VM's sealing key */
	free_page((unsigned long)buf);
	return ret;
}

static long csv_guest_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	switch (cmd) {
	case CSV_CMD_GET_REPORT:
		return csv_get_report((struct csv_report_req __user *)arg);
	default:
		return -ENOTTY;
	}
}

/* No .compat_ioctl: a 32-bit caller's struct is 12 bytes, so its request number differs anyway. */
static const struct file_operations csv_guest_fops = {
	.owner = THIS_MODULE,
	.open = nonseekable_open,
	.unlocked_ioctl = csv_guest_ioctl,
	.llseek = no_llseek,
};

/* World-accessible as in the upstream driver: Kata passes the node into unprivileged containers. */
static struct miscdevice csv_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "csv-guest",
	.fops = &csv_guest_fops,
	.mode = 0666,
};

static int __init csv_guest_init(void)
{
	int ret;

	BUILD_BUG_ON(sizeof(struct csv_report_req) != 16);
	BUILD_BUG_ON(CSV_CMD_GET_REPORT != 0xC0104401);
	BUILD_BUG_ON(CSV_REPORT_BUF_LEN != PAGE_SIZE);

	csv_platform = csv_guest_detected();
	if (!csv_platform && !csv_test_backend_skip_platform_check()) {
		/* one line, kept whole for grep */
		pr_info("not a Hygon CSV guest (needs a Hygon CPU, encrypted guest memory and KVM): not loading\n");
		return -ENODEV;
	}
	ret = misc_register(&csv_misc);
	if (ret) {
		pr_err("cannot register /dev/csv-guest: error %d\n", ret);
		return ret;
	}
	if (IS_ENABLED(CSV_GUEST_TEST_BACKEND))
		pr_warn("TEST BUILD with a fake firmware backend: never use it in production\n");
	return 0;
}

static void __exit csv_guest_exit(void)
{
	misc_deregister(&csv_misc);
}

module_init(csv_guest_init);
module_exit(csv_guest_exit);

MODULE_DESCRIPTION("Hygon CSV guest attestation driver (/dev/csv-guest)");
MODULE_LICENSE("GPL");
