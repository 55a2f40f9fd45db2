/* The user-space attestation hypercall. Outside a CSV guest the vmmcall instruction traps (SIGILL on
 * bare metal, an Intel CPU or QEMU TCG; SIGSEGV under some hypervisors): the trap is caught and
 * reported as "not a CSV guest" instead of killing the process. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#include "csv_internal.h"

#if defined(__x86_64__)

/* long csv_vmmcall_raw(long nr, long gpa, long len): rax = nr, rbx = gpa, rcx = len; result in rax.
 * Written in assembly so that the trapping instruction has a known address. */
__asm__(".text\n"
        ".globl csv_vmmcall_raw\n"
        ".hidden csv_vmmcall_raw\n"
        ".type csv_vmmcall_raw, @function\n"
        "csv_vmmcall_raw:\n"
        "    endbr64\n"
        "    push %rbx\n"
        "    mov %rdi, %rax\n"
        "    mov %rsi, %rbx\n"
        "    mov %rdx, %rcx\n"
        ".globl csv_vmmcall_insn\n"
        ".hidden csv_vmmcall_insn\n"
        "csv_vmmcall_insn:\n"
        "    vmmcall\n"
        "    pop %rbx\n"
        "    ret\n"
        ".size csv_vmmcall_raw, .-csv_vmmcall_raw\n");

long csv_vmmcall_raw(long nr, long gpa, long len);
extern const char csv_vmmcall_insn[];

static sigjmp_buf trap_env;
static volatile sig_atomic_t trap_signal;
static struct sigaction old_ill, old_segv;

static void restore_handlers(void)
{
    sigaction(SIGILL, &old_ill, NULL);
    sigaction(SIGSEGV, &old_segv, NULL);
}

static void on_trap(int sig, siginfo_t *info, void *uc_void)
{
    (void)info;
    ucontext_t *uc = uc_void;
    if ((const char *)uc->uc_mcontext.gregs[REG_RIP] != csv_vmmcall_insn) {
        /* Not ours: put the previous handlers back and let the fault repeat into them. */
        restore_handlers();
        return;
    }
    trap_signal = sig;
    siglongjmp(trap_env, 1);
}

static int explain_host_result(long ret, unsigned nr)
{
    switch (ret) {
    case -1:
        return csv_fail(CSV_ERR_NOT_CSV_GUEST, "not a CSV guest: the hypervisor refused the user-space hypercall %u "
                        "(-KVM_EPERM; only Hygon CSV hosts accept it from user space); try ioctl-get-attestation", nr);
    case -1000:
        return csv_fail(CSV_ERR_NOT_CSV_GUEST, "not a CSV guest: the hypervisor does not implement hypercall %u "
                        "(-KVM_ENOSYS; early Hygon kernels used 12: --hc 12)", nr);
    case -25:
        return csv_fail(CSV_ERR_NOT_CSV_GUEST, "not a CSV guest: the host reports this VM is not an SEV/CSV guest (-ENOTTY)");
    case -14:
        return csv_fail(CSV_ERR_HYPERCALL, "the host rejected the request page address (-EFAULT)");
    case -22:
        return csv_fail(CSV_ERR_HYPERCALL, "the host found the request page unusable (-EINVAL, not physically contiguous)");
    case -5:
        return csv_fail(CSV_ERR_HYPERCALL, "the firmware refused the attestation request (-EIO; CSV3 guests must use "
                        "ioctl-get-attestation and the csv-guest driver)");
    default:
        return csv_fail(CSV_ERR_HYPERCALL, "attestation hypercall %u failed with host status %ld", nr, ret);
    }
}

int csv_vmmcall(unsigned nr, uint64_t gpa, uint64_t len, long *host_ret)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    trap_signal = 0;
    if (sigaction(SIGILL, &sa, &old_ill) != 0 || sigaction(SIGSEGV, &sa, &old_segv) != 0)
        return csv_fail(CSV_ERR_HYPERCALL, "cannot install the SIGILL/SIGSEGV guard for vmmcall");

    volatile long ret = 0;
    if (sigsetjmp(trap_env, 1) == 0)
        ret = csv_vmmcall_raw((long)nr, (long)gpa, (long)len);
    restore_handlers();

    if (trap_signal)
        return csv_fail(CSV_ERR_NOT_CSV_GUEST, "not a CSV guest: the vmmcall instruction raised %s (no Hygon CSV "
                        "hypervisor here, e.g. bare metal, an Intel CPU or QEMU TCG)",
                        trap_signal == SIGILL ? "SIGILL" : "SIGSEGV");
    long r = ret;
    if (r > 0 && r <= 0xffffffffL)
        r = (int32_t)(uint32_t)r; /* some hosts hand back a 32-bit negative status */
    if (host_ret)
        *host_ret = r;
    return r == 0 ? CSV_OK : explain_host_result(r, nr);
}

#else

int csv_vmmcall(unsigned nr, uint64_t gpa, uint64_t len, long *host_ret)
{
    (void)nr, (void)gpa, (void)len, (void)host_ret;
    return csv_fail(CSV_ERR_UNSUPPORTED, "the vmmcall path exists only on x86-64; use ioctl-get-attestation");
}

#endif
