/* GET_REPORT through the csv-guest driver: _IOWR('D', 1, {u64 buffer; s32 length; pad}). */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "csv_internal.h"

struct csv_report_req {
    uint64_t buffer;
    int32_t length;
    uint32_t pad;
};

#define CSV_CMD_GET_REPORT _IOWR('D', 1, struct csv_report_req)
_Static_assert(CSV_CMD_GET_REPORT == 0xC0104401u, "GET_REPORT ioctl number must match the driver ABI");

static int open_failure(const char *device, int err)
{
    if (err == ENOENT || err == ENODEV || err == ENXIO)
        return csv_fail(CSV_ERR_NO_DEVICE, "%s: %s: load the csv-guest driver in the guest (or, in a container, "
                        "pass the device in: -v /dev/csv-guest:/dev/csv-guest)", device, strerror(err));
    return csv_fail(CSV_ERR_DEVICE_ACCESS, "cannot open %s: %s", device, strerror(err));
}

static int ioctl_failure(const char *device, int err)
{
    switch (err) {
    case ENOTTY:
        return csv_fail(CSV_ERR_IOCTL, "%s does not understand GET_REPORT (ENOTTY): not the csv-guest driver", device);
    case EINVAL:
        return csv_fail(CSV_ERR_IOCTL, "%s rejected the request (EINVAL): buffer length or extended flags refused", device);
    case EIO:
        return csv_fail(CSV_ERR_HYPERCALL, "%s: the firmware failed the attestation request (EIO)", device);
    case ENODEV:
        return csv_fail(CSV_ERR_NOT_CSV_GUEST, "not a CSV guest: %s reports no CSV firmware (ENODEV)", device);
    default:
        return csv_fail(CSV_ERR_IOCTL, "%s: GET_REPORT failed: %s", device, strerror(err));
    }
}

int csv_ioctl_report(const char *device, uint8_t *page, size_t len)
{
    int fd = open(device, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return open_failure(device, errno);
    struct csv_report_req req = {.buffer = (uint64_t)(uintptr_t)page, .length = (int32_t)len};
    int ret = ioctl(fd, CSV_CMD_GET_REPORT, &req);
    int err = errno;
    close(fd);
    if (ret < 0)
        return ioctl_failure(device, err);
    if (ret > 0) /* older drivers pass the host's hypercall status through unchanged */
        return csv_fail(CSV_ERR_HYPERCALL, "%s: the attestation hypercall failed with host status %d", device, ret);
    return CSV_OK;
}
