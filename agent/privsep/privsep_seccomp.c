/* The helper's seccomp filter: a flat allow list in classic BPF. It is hand-written because it
 * is a dozen instructions per call and needs no library; the list is what the helper's code
 * paths call (recv/send on its socket; open/read/write/ftruncate of sysfs attributes; readlink of
 * /proc/self/fd; directory listing for the backend; the saved file's atomic write: openat,
 * fsync, renameat, unlinkat, mkdir, getrandom; kill(pid, 0) for the owner check; malloc; exit)
 * plus the harmless calls libc makes on the way. A call not on the list returns EPERM. */
#include "privsep_seccomp.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#if defined(__x86_64__)
#define PRIVSEP_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PRIVSEP_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* aarch64 has only the *at() forms; the old names exist on x86-64. */
static const long allowed[] = {
    /* the socket to the agent */
    SYS_recvfrom,
    SYS_recvmsg,
    SYS_sendto,
    SYS_sendmsg,
    /* attributes and the saved file */
    SYS_openat,
    SYS_read,
    SYS_write,
    SYS_writev,
    SYS_close,
    SYS_lseek,
    SYS_fstat,
    SYS_newfstatat,
    SYS_statx,
    SYS_readlinkat,
    SYS_getdents64,
    SYS_faccessat,
    SYS_ftruncate,
    SYS_fsync,
    SYS_fdatasync,
    SYS_renameat,
    SYS_unlinkat,
    SYS_mkdirat,
    SYS_fcntl,
    SYS_getrandom,
#ifdef SYS_faccessat2
    SYS_faccessat2,
#endif
#ifdef SYS_renameat2
    SYS_renameat2,
#endif
#ifdef SYS_open
    SYS_open,
    SYS_stat,
    SYS_lstat,
    SYS_readlink,
    SYS_access,
    SYS_rename,
    SYS_unlink,
    SYS_mkdir,
#endif
#ifdef SYS_time
    SYS_time,
#endif
    /* who is who: the saved file's owner check, kill(pid, 0) */
    SYS_getpid,
    SYS_getppid,
    SYS_geteuid,
    SYS_getuid,
    SYS_kill,
    /* memory (qsort asks sysinfo how much there is), time, signals (AddressSanitizer checks
     * sigaltstack on exit), exit */
    SYS_brk,
    SYS_mmap,
    SYS_munmap,
    SYS_mremap,
    SYS_madvise,
    SYS_futex,
    SYS_clock_gettime,
    SYS_gettimeofday,
    SYS_sysinfo,
    SYS_rt_sigreturn,
    SYS_rt_sigprocmask,
    SYS_sigaltstack,
    SYS_exit,
    SYS_exit_group,
};

#define N_ALLOWED (sizeof(allowed) / sizeof(allowed[0]))

int privsep_seccomp_allows(long nr)
{
    for (size_t i = 0; i < N_ALLOWED; i++)
        if (allowed[i] == nr)
            return 1;
    return 0;
}

int privsep_seccomp_install(void)
{
#ifndef PRIVSEP_AUDIT_ARCH
    return -EOPNOTSUPP;
#else
    /* arch check, x32 check (x86-64), load nr, one compare per allowed call, default EPERM */
    struct sock_filter prog[5 + N_ALLOWED + 2];
    size_t n = 0;
    prog[n++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, PRIVSEP_AUDIT_ARCH, 1, 0);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS);
    prog[n++] =
        (struct sock_filter)BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#if defined(__x86_64__)
    /* x32 calls carry bit 30; none is allowed */
    prog[n++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, 0x40000000u,
                                             (unsigned char)N_ALLOWED, 0); /* to the EPERM */
#endif
    for (size_t i = 0; i < N_ALLOWED; i++) {
        /* on a match jump to the ALLOW after the last compare and the default */
        prog[n] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (unsigned)allowed[i],
                                               (unsigned char)(N_ALLOWED - i), 0);
        n++;
    }
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM);
    prog[n++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
    struct sock_fprog fprog = {.len = (unsigned short)n, .filter = prog};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
        return -errno;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &fprog, 0, 0) != 0)
        return -errno;
    return 0;
#endif
}
