/* The libcpupower backend without mount namespaces (issue 14: govhw_cpupower skips where they are
 * not permitted, as in many containers). libcpupower has no sysfs root of its own (its
 * PATH_TO_CPU is compiled in) and reaches the files only through open() and stat(); this test
 * defines those (and the few other calls the backend makes) in the executable itself, which the
 * dynamic linker prefers over libc for every library, and redirects paths under
 * /sys/devices/system/cpu into a copy of each fake tree. Then it runs the same checks as
 * govhw_cpupower's inside part: discovery against expected.json, writes through libcpupower read
 * back. */
#define GOVHW_CPUPOWER_NO_MAIN
#include "govhw_cpupower_test.c"

#include <dirent.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <sys/stat.h>

static char redirect_root[PATH_MAX];
static int redirected; /* opens and stats that went to the copy */

static const char *redirect(const char *path, char *buf, size_t cap)
{
    static const char prefix[] = "/sys/devices/system/cpu";
    size_t n = sizeof(prefix) - 1;
    if (!redirect_root[0] || !path || strncmp(path, prefix, n) != 0 ||
        (path[n] != '\0' && path[n] != '/'))
        return path;
    snprintf(buf, cap, "%s%s", redirect_root, path);
    __atomic_add_fetch(&redirected, 1, __ATOMIC_RELAXED);
    return buf;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

int open(const char *path, int flags, ...);
int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    char b[PATH_MAX];
    return REAL("open", int (*)(const char *, int, ...))(redirect(path, b, sizeof(b)), flags, mode);
}

int __open_2(const char *path, int flags);
int __open_2(const char *path, int flags)
{
    return open(path, flags);
}

int openat(int dirfd, const char *path, int flags, ...);
int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    if (flags & (O_CREAT | O_TMPFILE)) {
        va_list ap;
        va_start(ap, flags);
        mode = va_arg(ap, mode_t);
        va_end(ap);
    }
    char b[PATH_MAX];
    return REAL("openat", int (*)(int, const char *, int, ...))(dirfd, redirect(path, b, sizeof(b)),
                                                                flags, mode);
}

int stat(const char *restrict path, struct stat *restrict st)
{
    char b[PATH_MAX];
    return REAL("stat", int (*)(const char *, struct stat *))(redirect(path, b, sizeof(b)), st);
}

int access(const char *path, int mode)
{
    char b[PATH_MAX];
    return REAL("access", int (*)(const char *, int))(redirect(path, b, sizeof(b)), mode);
}

FILE *fopen(const char *restrict path, const char *restrict mode)
{
    char b[PATH_MAX];
    return REAL("fopen", FILE * (*)(const char *, const char *))(redirect(path, b, sizeof(b)),
                                                                 mode);
}

DIR *opendir(const char *path)
{
    char b[PATH_MAX];
    return REAL("opendir", DIR * (*)(const char *))(redirect(path, b, sizeof(b)));
}

ssize_t readlink(const char *restrict path, char *restrict buf, size_t len)
{
    char b[PATH_MAX];
    return REAL("readlink", ssize_t(*)(const char *, char *, size_t))(redirect(path, b, sizeof(b)),
                                                                      buf, len);
}

int main(void)
{
    int rc = 0;
    for (size_t k = 0; k < sizeof(trees) / sizeof(trees[0]); k++) {
        char copy[PATH_MAX];
        if (govhw_copy_tree(trees[k], copy, sizeof(copy)) != 0) {
            CHECK_MSG(0, "copy %s", trees[k]);
            continue;
        }
        setenv("FAKE_SYSFS_ROOT", copy, 1);
        snprintf(redirect_root, sizeof(redirect_root), "%s", copy);
        int before = redirected;
        printf("== %s\n", trees[k]);
        if (inside(trees[k]) != 0)
            rc = 1;
        CHECK_MSG(redirected > before, "%s: nothing was redirected", trees[k]);
        redirect_root[0] = '\0';
        govhw_rm_rf(copy);
    }
    return rc || et_finish();
}
