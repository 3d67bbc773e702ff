/* Strict file and number helpers for sysfs/procfs backends (see fileio.h). */
#include "common/fileio.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int cmn_path(char *buf, size_t cap, const char *root, const char *fmt, ...)
{
    if (!root || !*root)
        root = "";
    size_t root_len = strlen(root);
    while (root_len > 0 && root[root_len - 1] == '/')
        root_len--;
    if (root_len + 1 >= cap)
        return -ENAMETOOLONG;
    memcpy(buf, root, root_len);

    char rel[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(rel, sizeof(rel), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(rel))
        return -ENAMETOOLONG;
    const char *r = rel;
    while (*r == '/')
        r++;
    int m = snprintf(buf + root_len, cap - root_len, "/%s", r);
    if (m < 0 || (size_t)m >= cap - root_len)
        return -ENAMETOOLONG;
    return 0;
}

int cmn_read_file(const char *path, char *buf, size_t cap, size_t *ret_len)
{
    if (cap == 0)
        return -EINVAL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return -errno;
    size_t len = 0;
    int rc = 0;
    for (;;) {
        if (len == cap - 1) {
            char extra;
            ssize_t more = read(fd, &extra, 1);
            if (more > 0)
                rc = -EFBIG;
            break;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    buf[len] = '\0';
    if (rc == -EAGAIN)
        rc = -ENODATA;
    if (rc == 0 && len == 0)
        rc = -ENODATA;
    if (rc == 0 && ret_len)
        *ret_len = len;
    return rc;
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

int cmn_read_string(const char *path, char *buf, size_t cap)
{
    char tmp[4096];
    int rc = cmn_read_file(path, tmp, sizeof(tmp), NULL);
    if (rc < 0)
        return rc;
    char *t = trim(tmp);
    size_t n = strlen(t);
    if (n + 1 > cap)
        return -EFBIG;
    memcpy(buf, t, n + 1);
    return 0;
}

int cmn_parse_i64(const char *s, int64_t *ret)
{
    if (!s)
        return -EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -EINVAL;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    if (end == s)
        return -EINVAL;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -EINVAL;
    *ret = (int64_t)v;
    return 0;
}

int cmn_parse_u64(const char *s, uint64_t *ret)
{
    if (!s)
        return -EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return -EINVAL; /* rejects '-' which strtoull would silently wrap */
    errno = 0;
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return -ERANGE;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -EINVAL;
    *ret = (uint64_t)v;
    return 0;
}

int cmn_parse_double(const char *s, double *ret)
{
    if (!s)
        return -EINVAL;
    while (isspace((unsigned char)*s))
        s++;
    if (!*s)
        return -EINVAL;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s)
        return -EINVAL;
    if (errno == ERANGE)
        return -ERANGE;
    while (isspace((unsigned char)*end))
        end++;
    if (*end)
        return -EINVAL;
    if (!isfinite(v))
        return -EINVAL; /* "nan"/"inf" are never meaningful settings or readings */
    *ret = v;
    return 0;
}

int cmn_read_u64(const char *path, uint64_t *ret)
{
    char buf[64];
    int rc = cmn_read_string(path, buf, sizeof(buf));
    if (rc < 0)
        return rc == -EFBIG ? -EINVAL : rc;
    return cmn_parse_u64(buf, ret);
}

int cmn_read_i64(const char *path, int64_t *ret)
{
    char buf[64];
    int rc = cmn_read_string(path, buf, sizeof(buf));
    if (rc < 0)
        return rc == -EFBIG ? -EINVAL : rc;
    return cmn_parse_i64(buf, ret);
}

int cmn_write_string(const char *path, const char *value)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_TRUNC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(value);
    ssize_t n;
    do {
        n = write(fd, value, len);
    } while (n < 0 && errno == EINTR);
    int rc = 0;
    if (n < 0)
        rc = -errno;
    else if ((size_t)n != len)
        rc = -EIO;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

int cmn_mkdir_p(const char *path)
{
    char tmp[PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof(tmp))
        return -ENAMETOOLONG;
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

int cmn_check_private_dir_fd(int dirfd)
{
    struct stat st;
    if (fstat(dirfd, &st) != 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return -ENOTDIR;
    /* Only root or we may own it, and nobody else may write to it: otherwise another user could
     * swap in links or files between our checks and our use. */
    if ((st.st_uid != 0 && st.st_uid != geteuid()) || (st.st_mode & (S_IWGRP | S_IWOTH)))
        return -EPERM;
    return 0;
}

int cmn_check_private_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = cmn_check_private_dir_fd(fd);
    close(fd);
    return rc;
}

/* Splits path into its directory (opened) and final component. */
static int open_parent(const char *path, const char **ret_base)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX];
    if (!slash) {
        strcpy(dir, ".");
        *ret_base = path;
    } else {
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof(dir))
            return -ENAMETOOLONG;
        memcpy(dir, path, n);
        dir[n] = '\0';
        *ret_base = slash + 1;
    }
    if (!**ret_base)
        return -EISDIR;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

/* For cmn_write_file_for_dir_owner: the directory may belong to any one user as long as no one
 * else may write to it; ret_uid and ret_gid get the owner the new file must have (-1: ours). */
static int check_owned_dir_fd(int dirfd, uid_t *ret_uid, gid_t *ret_gid)
{
    *ret_uid = (uid_t)-1;
    *ret_gid = (gid_t)-1;
    int rc = cmn_check_private_dir_fd(dirfd);
    if (rc != -EPERM || geteuid() != 0)
        return rc;
    struct stat st;
    if (fstat(dirfd, &st) != 0)
        return -errno;
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return -EPERM; /* more than its owner could swap names in it */
    *ret_uid = st.st_uid;
    *ret_gid = st.st_gid;
    return 0;
}

static int write_atomic(const char *path, const void *data, size_t len, bool for_dir_owner)
{
    const char *base;
    int dirfd = open_parent(path, &base);
    if (dirfd < 0)
        return dirfd;
    uid_t owner = (uid_t)-1;
    gid_t group = (gid_t)-1;
    int rc =
        for_dir_owner ? check_owned_dir_fd(dirfd, &owner, &group) : cmn_check_private_dir_fd(dirfd);
    if (rc < 0) {
        close(dirfd);
        return rc;
    }
    /* An unpredictable temporary name, created exclusively and never through a link: a name
     * someone planted (a link to /etc/shadow) makes the open fail instead of redirecting it. */
    char tmp[NAME_MAX + 1];
    int fd = -1;
    for (int attempt = 0; attempt < 16 && fd < 0; attempt++) {
        uint64_t r;
        if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
            r = ((uint64_t)getpid() << 32) ^ (uint64_t)time(NULL) ^ ((uint64_t)attempt << 48);
        int n = snprintf(tmp, sizeof(tmp), ".%.200s.%016llx.tmp", base, (unsigned long long)r);
        if (n < 0 || (size_t)n >= sizeof(tmp)) {
            close(dirfd);
            return -ENAMETOOLONG;
        }
        fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EEXIST) {
            rc = -errno;
            close(dirfd);
            return rc;
        }
    }
    if (fd < 0) {
        close(dirfd);
        return -EEXIST;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    /* Through the descriptor, never a name: the file is the directory owner's before it has
     * its final name, so the owner can read and replace it. */
    if (rc == 0 && owner != (uid_t)-1 && fchown(fd, owner, group) != 0)
        rc = -errno;
    if (rc == 0 && fsync(fd) != 0)
        rc = -errno;
    if (close(fd) != 0 && rc == 0)
        rc = -errno;
    /* rename replaces a link at path itself, never what it points to */
    if (rc == 0 && renameat(dirfd, tmp, dirfd, base) != 0)
        rc = -errno;
    if (rc != 0)
        unlinkat(dirfd, tmp, 0);
    else
        fsync(dirfd); /* the rename itself survives a power cut */
    close(dirfd);
    return rc;
}

int cmn_write_file_atomic(const char *path, const void *data, size_t len)
{
    return write_atomic(path, data, len, false);
}

int cmn_write_file_for_dir_owner(const char *path, const void *data, size_t len)
{
    return write_atomic(path, data, len, true);
}

int cmn_read_file_trusted(const char *path, char *buf, size_t cap, size_t *ret_len)
{
    if (cap == 0)
        return -EINVAL;
    const char *base;
    int dirfd = open_parent(path, &base);
    if (dirfd < 0)
        return dirfd;
    int rc = cmn_check_private_dir_fd(dirfd);
    int fd = rc < 0 ? -1 : openat(dirfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (rc == 0 && fd < 0)
        rc = errno == ELOOP ? -EPERM : -errno;
    close(dirfd);
    if (rc < 0)
        return rc;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
    } else if (!S_ISREG(st.st_mode) || (st.st_uid != 0 && st.st_uid != geteuid()) ||
               (st.st_mode & (S_IWGRP | S_IWOTH))) {
        rc = -EPERM;
    } else {
        size_t len = 0;
        for (;;) {
            if (len == cap - 1) {
                char extra;
                if (read(fd, &extra, 1) > 0)
                    rc = -EFBIG;
                break;
            }
            ssize_t n = read(fd, buf + len, cap - 1 - len);
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0) {
                rc = -errno;
                break;
            }
            if (n == 0)
                break;
            len += (size_t)n;
        }
        buf[len] = '\0';
        if (rc == 0 && len == 0)
            rc = -ENODATA;
        if (rc == 0 && ret_len)
            *ret_len = len;
    }
    close(fd);
    return rc;
}

FILE *cmn_fopen_write(const char *path)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
    if (fd < 0)
        return NULL;
    FILE *f = fdopen(fd, "w");
    if (!f) {
        int e = errno;
        close(fd);
        errno = e;
    }
    return f;
}
