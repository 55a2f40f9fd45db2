/* One locked, page-aligned request page and its guest-physical address from /proc/self/pagemap. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "csv_internal.h"

#define PAGEMAP_PRESENT (1ULL << 63)
#define PAGEMAP_SWAPPED (1ULL << 62)
#define PAGEMAP_PFN_MASK ((1ULL << 55) - 1)

int csv_page_alloc(uint8_t **page)
{
    void *p = mmap(NULL, CSV_PAGE_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return csv_fail(CSV_ERR_NO_MEMORY, "cannot map a request page: %s", strerror(errno));
    /* Locked so that reclaim, KSM or compaction cannot move it between translation and the call;
     * it also keeps the sealing key out of swap. */
    if (mlock(p, CSV_PAGE_LEN) != 0) {
        int err = errno;
        munmap(p, CSV_PAGE_LEN);
        return csv_fail(CSV_ERR_MLOCK, "cannot lock the request page in memory (mlock: %s); raise RLIMIT_MEMLOCK "
                        "(ulimit -l)", strerror(err));
    }
    memset(p, 0, CSV_PAGE_LEN); /* touch: the page must be present before it is translated */
    *page = p;
    return CSV_OK;
}

void csv_page_free(uint8_t *page)
{
    if (!page)
        return;
    explicit_bzero(page, CSV_PAGE_LEN);
    munlock(page, CSV_PAGE_LEN);
    munmap(page, CSV_PAGE_LEN);
}

int csv_pagemap_translate(const void *va, uint64_t *gpa)
{
    int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return csv_fail(CSV_ERR_PAGEMAP, "cannot open /proc/self/pagemap: %s (is /proc mounted?)", strerror(errno));
    uint64_t entry = 0;
    off_t off = (off_t)((uintptr_t)va / CSV_PAGE_LEN * sizeof(entry));
    ssize_t n = pread(fd, &entry, sizeof(entry), off);
    int err = errno;
    close(fd);
    if (n != (ssize_t)sizeof(entry))
        return csv_fail(CSV_ERR_PAGEMAP, "cannot read /proc/self/pagemap: %s", n < 0 ? strerror(err) : "short read");
    if (!(entry & PAGEMAP_PRESENT) || (entry & PAGEMAP_SWAPPED))
        return csv_fail(CSV_ERR_PAGE_NOT_PRESENT, "the locked request page is %s according to /proc/self/pagemap",
                        (entry & PAGEMAP_SWAPPED) ? "swapped out" : "not present");
    uint64_t pfn = entry & PAGEMAP_PFN_MASK;
    if (pfn == 0)
        return csv_fail(CSV_ERR_PAGEMAP_NO_PFN,
                        "/proc/self/pagemap shows frame number 0: reading physical addresses needs CAP_SYS_ADMIN; "
                        "run as root, or use ioctl-get-attestation with /dev/csv-guest (the Kata/container path)");
    *gpa = pfn * CSV_PAGE_LEN;
    return CSV_OK;
}
