/* Checks the strict sysfs/procfs helpers on real temporary files. */
#include "common/fileio.h"
#include "ember_test.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    fputs(text, f);
    fclose(f);
}

/* Issue 13: root's `ember governor calibrate` writes the agent's curve into the agent's own
 * directory (/var/lib/ember, user ember). The file must end up the directory owner's, written
 * without following anything that user could plant; the strict writer still refuses. */
static void test_write_for_dir_owner(const char *dir)
{
    if (geteuid() != 0) {
        printf("write for a directory's owner: the handover needs root; checked as a user only\n");
        char own[600];
        snprintf(own, sizeof(own), "%s/mine.json", dir);
        CHECK_EQ_INT(cmn_write_file_for_dir_owner(own, "{}", 2), 0);
        return;
    }
    const uid_t uid = 65534; /* nobody */
    const gid_t gid = 65534;
    char agent_dir[512], curve[600], victim[600], s[64];
    snprintf(agent_dir, sizeof(agent_dir), "%s/agent-state", dir);
    CHECK_EQ_INT(mkdir(agent_dir, 0750), 0);
    CHECK_EQ_INT(chown(agent_dir, uid, gid), 0);
    snprintf(curve, sizeof(curve), "%s/calibration.json", agent_dir);
    CHECK_EQ_INT(cmn_write_file_atomic(curve, "{}", 2), -EPERM); /* the strict writer refuses */
    CHECK_EQ_INT(cmn_write_file_for_dir_owner(curve, "{\"v\":1}", 7), 0);
    struct stat st;
    CHECK_EQ_INT(lstat(curve, &st), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ_INT(st.st_uid, uid);
    CHECK_EQ_INT(st.st_gid, gid);
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    CHECK_EQ_INT(cmn_read_string(curve, s, sizeof(s)), 0);
    CHECK_STR(s, "{\"v\":1}");
    /* The owner planted a link at the final name, to a file of root's: replaced, not followed. */
    snprintf(victim, sizeof(victim), "%s/root-only", dir);
    put(victim, "precious");
    unlink(curve);
    CHECK_EQ_INT(symlink(victim, curve), 0);
    CHECK_EQ_INT(cmn_write_file_for_dir_owner(curve, "{\"v\":2}", 7), 0);
    CHECK_EQ_INT(cmn_read_string(victim, s, sizeof(s)), 0);
    CHECK_STR(s, "precious");
    CHECK_EQ_INT(lstat(victim, &st), 0);
    CHECK_EQ_INT(st.st_uid, 0);
    CHECK_EQ_INT(lstat(curve, &st), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ_INT(st.st_uid, uid);
    /* No temporary file is left behind. */
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "test $(ls -A %s | wc -l) -eq 1", agent_dir);
    CHECK_MSG(system(cmd) == 0, "%s holds more than the curve", agent_dir);
    /* A directory its group may write to has more than one owner: refused. */
    CHECK_EQ_INT(chmod(agent_dir, 0770), 0);
    CHECK_EQ_INT(cmn_write_file_for_dir_owner(curve, "{}", 2), -EPERM);
    CHECK_EQ_INT(chmod(agent_dir, 0750), 0);
    /* A root-owned directory: as before, the file stays root's. */
    char root_file[600];
    snprintf(root_file, sizeof(root_file), "%s/root-state.json", dir);
    CHECK_EQ_INT(cmn_write_file_for_dir_owner(root_file, "{}", 2), 0);
    CHECK_EQ_INT(lstat(root_file, &st), 0);
    CHECK_EQ_INT(st.st_uid, 0);
}

int main(void)
{
    char dir[] = "/tmp/ember-fileio-XXXXXX";
    if (!mkdtemp(dir))
        return 1;
    char path[512];
    uint64_t u;
    int64_t i;
    double d;

    CHECK_EQ_INT(cmn_path(path, sizeof(path), dir, "/sys/%s/x", "a"), 0);
    CHECK(strstr(path, "/sys/a/x") != NULL);
    CHECK_EQ_INT(cmn_path(path, sizeof(path), NULL, "proc/stat"), 0);
    CHECK_STR(path, "/proc/stat");
    char tiny[8];
    CHECK_EQ_INT(cmn_path(tiny, sizeof(tiny), "/very/long/root", "x"), -ENAMETOOLONG);

    snprintf(path, sizeof(path), "%s/freq", dir);
    put(path, "2900000\n");
    CHECK_EQ_INT(cmn_read_u64(path, &u), 0);
    CHECK_EQ_INT(u, 2900000);
    put(path, "-274000\n");
    CHECK_EQ_INT(cmn_read_i64(path, &i), 0);
    CHECK_EQ_INT(i, -274000);
    CHECK_EQ_INT(cmn_read_u64(path, &u), -EINVAL);
    put(path, "garbage\n");
    CHECK_EQ_INT(cmn_read_u64(path, &u), -EINVAL);
    put(path, "12 34\n");
    CHECK_EQ_INT(cmn_read_i64(path, &i), -EINVAL);
    put(path, "99999999999999999999999\n");
    CHECK_EQ_INT(cmn_read_u64(path, &u), -ERANGE);
    put(path, "");
    CHECK_EQ_INT(cmn_read_u64(path, &u), -ENODATA);

    snprintf(path, sizeof(path), "%s/missing", dir);
    CHECK_EQ_INT(cmn_read_u64(path, &u), -ENOENT);

    /* A FIFO with no writer must not hang the reader. */
    snprintf(path, sizeof(path), "%s/fifo", dir);
    CHECK_EQ_INT(mkfifo(path, 0600), 0);
    CHECK(cmn_read_u64(path, &u) < 0);

    snprintf(path, sizeof(path), "%s/gov", dir);
    put(path, "ondemand\n");
    CHECK_EQ_INT(cmn_write_string(path, "userspace"), 0);
    char s[32];
    CHECK_EQ_INT(cmn_read_string(path, s, sizeof(s)), 0);
    CHECK_STR(s, "userspace");
    CHECK_EQ_INT(cmn_read_string(path, s, 4), -EFBIG);

    CHECK_EQ_INT(cmn_parse_double(" 1.5 ", &d), 0);
    CHECK_NEAR(d, 1.5, 0);
    CHECK_EQ_INT(cmn_parse_double("nan", &d), -EINVAL);
    CHECK_EQ_INT(cmn_parse_double("1.5x", &d), -EINVAL);
    CHECK_EQ_INT(cmn_parse_i64("", &i), -EINVAL);

    snprintf(path, sizeof(path), "%s/a/b/c", dir);
    CHECK_EQ_INT(cmn_mkdir_p(path), 0);
    CHECK_EQ_INT(cmn_mkdir_p(path), 0);
    snprintf(path, sizeof(path), "%s/a/b/c/file", dir);
    CHECK_EQ_INT(cmn_write_file_atomic(path, "hello", 5), 0);
    CHECK_EQ_INT(cmn_read_string(path, s, sizeof(s)), 0);
    CHECK_STR(s, "hello");

    /* Issue 14: a root process writing its state must not be redirected by a planted link.
     * The old temporary name was predictable (<path>.tmp.<pid>); a link there must not be
     * followed, nor a link at the final name, and the victim keeps its content. */
    char victim[512], link_path[600], state[512];
    snprintf(victim, sizeof(victim), "%s/victim", dir);
    put(victim, "precious");
    snprintf(state, sizeof(state), "%s/a/state.json", dir);
    snprintf(link_path, sizeof(link_path), "%s.tmp.%d", state, (int)getpid());
    CHECK_EQ_INT(symlink(victim, link_path), 0);
    CHECK_EQ_INT(cmn_write_file_atomic(state, "{}", 2), 0);
    CHECK_EQ_INT(cmn_read_string(victim, s, sizeof(s)), 0);
    CHECK_STR(s, "precious");
    unlink(state);
    CHECK_EQ_INT(symlink(victim, state), 0);
    CHECK_EQ_INT(cmn_write_file_atomic(state, "{}", 2), 0);
    CHECK_EQ_INT(cmn_read_string(victim, s, sizeof(s)), 0);
    CHECK_STR(s, "precious");
    struct stat st;
    CHECK_EQ_INT(lstat(state, &st), 0);
    CHECK(S_ISREG(st.st_mode));
    CHECK_EQ_INT(st.st_mode & 0777, 0600);
    size_t n = 0;
    CHECK_EQ_INT(cmn_read_file_trusted(state, s, sizeof(s), &n), 0);
    CHECK_EQ_INT(n, 2);

    /* A directory others can write to is refused for writing and reading; so is a state file
     * others can write, or a link. */
    char open_dir[512], in_open[600];
    snprintf(open_dir, sizeof(open_dir), "%s/world", dir);
    CHECK_EQ_INT(mkdir(open_dir, 0755), 0);
    CHECK_EQ_INT(chmod(open_dir, 0777), 0);
    snprintf(in_open, sizeof(in_open), "%s/state.json", open_dir);
    CHECK_EQ_INT(cmn_write_file_atomic(in_open, "{}", 2), -EPERM);
    CHECK_EQ_INT(cmn_check_private_dir(open_dir), -EPERM);
    put(in_open, "{}");
    CHECK_EQ_INT(cmn_read_file_trusted(in_open, s, sizeof(s), NULL), -EPERM);
    CHECK_EQ_INT(chmod(open_dir, 0755), 0);
    CHECK_EQ_INT(cmn_read_file_trusted(in_open, s, sizeof(s), NULL), 0);
    CHECK_EQ_INT(chmod(in_open, 0666), 0);
    CHECK_EQ_INT(cmn_read_file_trusted(in_open, s, sizeof(s), NULL), -EPERM);
    unlink(state);
    CHECK_EQ_INT(symlink(in_open, state), 0);
    CHECK_EQ_INT(cmn_read_file_trusted(state, s, sizeof(s), NULL), -EPERM);
    snprintf(path, sizeof(path), "%s/a/missing.json", dir);
    CHECK_EQ_INT(cmn_read_file_trusted(path, s, sizeof(s), NULL), -ENOENT);

    /* Output files never follow a link either. */
    FILE *f = cmn_fopen_write(state);
    CHECK(f == NULL);
    if (f)
        fclose(f);
    CHECK_EQ_INT(cmn_read_string(in_open, s, sizeof(s)), 0);
    CHECK_STR(s, "{}");

    test_write_for_dir_owner(dir);

    char cmd[600];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        return 1;
    return et_finish();
}
