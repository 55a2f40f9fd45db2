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
/*
 * A normal build: macros rather than inline stubs, so that no name of the test backend reaches the
 * module, not even its debug info (tests/kernel checks the bytes of the .ko).
 */
#define csv_test_backend_active() false
#define csv_test_backend_skip_platform_check() false
#define csv_test_backend_attest(dev, buf, len) (-ENODEV)
#endif

#endif /* CSV_GUEST_H */
