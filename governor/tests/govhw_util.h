/* Helpers shared by the govhw tests: private copies of the fake sysfs trees (never write the
 * shared ones), small file read/write helpers and expected.json access. */
#ifndef GOVHW_UTIL_H
#define GOVHW_UTIL_H

#include <cjson/cJSON.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/fileio.h"
#include "ember_test.h"

/* Where a tree lives: ours under tests/sysfs-trees, the shared ones under <shared>/sysfs-trees. */
static inline void govhw_tree_src(const char *tree, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s/tests/sysfs-trees/%s", EMBER_SOURCE_DIR, tree);
    if (access(buf, F_OK) != 0)
        snprintf(buf, cap, "%s/sysfs-trees/%s", et_shared_dir(), tree);
}

static inline int govhw_run(const char *const argv[])
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Some copies of the shared trees lost their symlinks: the link became a small regular file
 * holding the target ("../cpufreq/policy1"). Turn such files back into the links the kernel has,
 * when the target resolves inside the tree. */
static char govhw_fix_root[PATH_MAX];

static inline int govhw_fix_link(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
    (void)ftw;
    char target[256], dir[PATH_MAX], resolved[PATH_MAX], joined[PATH_MAX * 2];
    if (type != FTW_F || sb->st_size < 4 || sb->st_size > 200)
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(target, 1, sizeof(target) - 1, f);
    fclose(f);
    target[n] = '\0';
    if (n && target[n - 1] == '\n')
        target[--n] = '\0';
    if (strncmp(target, "../", 3) != 0 || strchr(target, '\n') || strchr(target, ' '))
        return 0;
    snprintf(dir, sizeof(dir), "%s", path);
    *strrchr(dir, '/') = '\0';
    snprintf(joined, sizeof(joined), "%s/%s", dir, target);
    if (!realpath(joined, resolved) || strncmp(resolved, govhw_fix_root, strlen(govhw_fix_root)))
        return 0;
    if (unlink(path) == 0 && symlink(target, path) != 0)
        fprintf(stderr, "govhw: cannot relink %s\n", path);
    return 0;
}

/* Copies a tree to a fresh temporary directory (cp -a keeps the relative symlinks), makes it
 * writable and repairs flattened links. Returns 0. */
static inline int govhw_copy_tree(const char *tree, char *dst, size_t cap)
{
    char src[PATH_MAX], from[PATH_MAX + 4];
    govhw_tree_src(tree, src, sizeof(src));
    if (access(src, F_OK) != 0) {
        fprintf(stderr, "tree %s not found (%s)\n", tree, src);
        return -1;
    }
    snprintf(dst, cap, "%s/govhw-%s-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", tree);
    if (!mkdtemp(dst))
        return -1;
    snprintf(from, sizeof(from), "%s/.", src);
    const char *argv[] = {"cp", "-a", from, dst, NULL};
    if (govhw_run(argv) != 0)
        return -1;
    const char *chmod_argv[] = {"chmod", "-R", "u+w", dst, NULL};
    if (govhw_run(chmod_argv) != 0)
        return -1;
    if (!realpath(dst, govhw_fix_root))
        return -1;
    return nftw(dst, govhw_fix_link, 16, FTW_PHYS) == 0 ? 0 : -1;
}

static inline void govhw_rm_rf(const char *dir)
{
    if (!dir || !*dir || strcmp(dir, "/") == 0)
        return;
    const char *argv[] = {"rm", "-rf", dir, NULL};
    govhw_run(argv);
}

/* Reads root/rel trimmed into a static buffer ("<err>" when unreadable). */
static inline const char *govhw_get(const char *root, const char *rel)
{
    static char val[4096];
    char path[PATH_MAX];
    cmn_path(path, sizeof(path), root, "%s", rel);
    if (cmn_read_string(path, val, sizeof(val)) != 0)
        strcpy(val, "<err>");
    return val;
}

static inline int govhw_put(const char *root, const char *rel, const char *value)
{
    char path[PATH_MAX];
    cmn_path(path, sizeof(path), root, "%s", rel);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(value, f);
    return fclose(f);
}

static inline cJSON *govhw_expected(const char *tree)
{
    char src[PATH_MAX], path[PATH_MAX + 16];
    govhw_tree_src(tree, src, sizeof(src));
    snprintf(path, sizeof(path), "%s/expected.json", src);
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[1 << 18];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return cJSON_Parse(buf);
}

static inline double govhw_num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

#endif
