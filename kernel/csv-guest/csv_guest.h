/* SPDX-License-Identifier: GPL-2.0-only */
/* Internal interface between the csv-guest driver and its optional test backend. */
#ifndef CSV_GUEST_H
#define CSV_GUEST_H

#include <linux/device.h>
#include <linux/types.h>

/*
 * Not in the stock uapi <linux/kvm_para.h>, whose numbers stop at 12 (Hygon moved it from 12 to
 * 100 when upstream took 12).
 */
#define KVM_HC_VM_ATTESTATION 100

#ifdef CSV_GUEST_TEST_BACKEND
/*
 * Compiled in only by `make TEST_BACKEND=1` (or CONFIG_CSV_GUEST_TEST_BACKEND): a fake firmware
 * that answers with a report file chosen by the test, so the whole path runs without CSV hardware.
 */
bool csv_test_backend_active(void);
bool csv_test_backend_skip_platform_check(void);
long csv_test_backend_attest(struct device *dev, u8 *buf, unsigned int len);
#else
static inline bool csv_test_backend_active(void) { return false; }
static inline bool csv_test_backend_skip_platform_check(void) { return false; }
static inline long csv_test_backend_attest(struct device *dev, u8 *buf, unsigned int len)
{
	return -ENODEV;
}
#endif

#endif /* CSV_GUEST_H */
