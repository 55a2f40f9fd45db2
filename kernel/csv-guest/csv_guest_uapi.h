/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * /dev/csv-guest ioctl ABI (Hygon CSV guest attestation).
 *
 * Shared by the driver and userspace. The layout and number are those of the Hygon devkit driver
 * (struct csv_guest_mem {va, size}) and of the OpenAnolis/Hygon kernel driver
 * (struct csv_report_req {report_data, len}): one request number serves both.
 */
#ifndef CSV_GUEST_UAPI_H
#define CSV_GUEST_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* GET_REPORT argument: 16 bytes on x86-64. */
struct csv_report_req {
	union {
		__u64 report_data; /* upstream name: user pointer to the in/out buffer */
		__u64 va;          /* devkit name */
	};
	union {
		__s32 len;         /* upstream name: buffer length in bytes */
		__s32 size;        /* devkit name */
	};
	__u32 reserved;            /* ignored: older callers leave it uninitialised */
};

#define CSV_GUEST_IOC_TYPE 'D'
#define CSV_CMD_GET_REPORT _IOWR(CSV_GUEST_IOC_TYPE, 1, struct csv_report_req) /* 0xC0104401 */
#define GET_ATTESTATION_REPORT CSV_CMD_GET_REPORT                             /* devkit name */

/* The in/out buffer: exactly one page, the request at offset 0. */
#define CSV_REPORT_BUF_LEN 4096
/* Request: user data 64 | mnonce 16 | SM3(user data | mnonce) 32 */
#define CSV_REPORT_INPUT_DATA_LEN 112
#define CSV_ATTESTATION_USER_DATA_EXT_LEN 132

/* Extended request (CSV3 firmware): bytes 112..127 hold the magic, 128..131 the flags (u32 LE). */
#define CSV_ATTESTATION_MAGIC "ATTESTATION_EXT" /* plus its NUL: compared over 16 bytes */
#define CSV_ATTESTATION_MAGIC_LEN 16
#define CSV_ATTESTATION_MAGIC_OFFSET CSV_REPORT_INPUT_DATA_LEN
#define CSV_ATTESTATION_FLAGS_OFFSET (CSV_ATTESTATION_MAGIC_OFFSET + CSV_ATTESTATION_MAGIC_LEN)
#define CSV_ATTESTATION_FLAG_REPORT_EXT (1U << 0)      /* V2 report */
#define CSV_ATTESTATION_FLAG_REPORT_EXT_HOST_DATA (1U << 1) /* V3 report (V2 plus host_data) */
#define CSV_ATTESTATION_FLAGS_KNOWN \
	(CSV_ATTESTATION_FLAG_REPORT_EXT | CSV_ATTESTATION_FLAG_REPORT_EXT_HOST_DATA)

#endif /* CSV_GUEST_UAPI_H */
