/* Raspberry Pi 5 PMIC rails: `vcgencmd pmic_read_adc` asks the firmware (through the mailbox)
 * for the PMIC's ADC readings and prints one rail quantity per line,
 *     VDD_CORE_A current(7)=0.64420200A
 *     VDD_CORE_V volt(15)=0.72344700V
 * (the `NAME_A` / `NAME_V` pairs; some rails, e.g. EXT5V_V and BATT_V, have a voltage only).
 * The power is the sum of V x I over the rails that have both: the SoC and board rails behind
 * the PMIC (scope "soc"), not the 5 V input. The command is configurable (tests use a script
 * printing a recorded fixture) and is run without a shell, with a time limit. */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/timeutil.h"
#include "power_internal.h"

#define PMIC_OUTPUT_MAX 16384
#define PMIC_TIMEOUT_MS 2000
#define PMIC_ARGS_MAX   8
#define PMIC_RAIL_NAME  24

extern char **environ;

struct rail {
    char name[PMIC_RAIL_NAME];
    double amps, volts; /* NAN until seen */
};

/* One line "<NAME>_A current(<n>)=<x>A" or "<NAME>_V volt(<n>)=<x>V" (the "(<n>)" part and the
 * word are optional: "<NAME>_V=<x>V" is taken too). 1: a reading; 0: not a rail line. */
static int parse_line(const char *line, size_t len, char *name, size_t name_cap, char *kind,
                      double *value)
{
    while (len && (*line == ' ' || *line == '\t')) {
        line++;
        len--;
    }
    size_t n = 0;
    while (n < len && line[n] != ' ' && line[n] != '=' && line[n] != '\t')
        n++;
    if (n < 3 || n >= name_cap + 2 || line[n - 2] != '_' ||
        (line[n - 1] != 'A' && line[n - 1] != 'V'))
        return 0;
    *kind = line[n - 1];
    memcpy(name, line, n - 2);
    name[n - 2] = '\0';
    for (size_t i = 0; i < n - 2; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    const char *eq = memchr(line + n, '=', len - n);
    if (!eq)
        return 0;
    size_t rest = len - (size_t)(eq + 1 - line);
    char num[40];
    if (rest == 0 || rest >= sizeof(num))
        return 0;
    memcpy(num, eq + 1, rest);
    num[rest] = '\0';
    char *end = NULL;
    errno = 0;
    double v = strtod(num, &end);
    if (end == num || errno == ERANGE || !isfinite(v))
        return 0;
    while (*end == ' ' || *end == '\r')
        end++;
    if (*end != *kind || end[1] != '\0')
        return 0; /* the unit must match the quantity */
    *value = v;
    return 1;
}

int tel_pmic_parse(const char *text, size_t len, double *ret_w, int *ret_rails, char *err,
                   size_t err_len)
{
    struct rail rails[32];
    int n_rails = 0;
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        char name[PMIC_RAIL_NAME], kind = 0;
        double v = 0;
        if (!parse_line(line, ll, name, sizeof(name), &kind, &v))
            continue;
        if (v < 0 || v > (kind == 'A' ? 50.0 : 60.0)) {
            snprintf(err, err_len, "rail %s_%c reads %g, outside any Pi 5 rail's range", name, kind,
                     v);
            return -EBADMSG;
        }
        int i = 0;
        while (i < n_rails && strcmp(rails[i].name, name) != 0)
            i++;
        if (i == n_rails) {
            if (n_rails == (int)(sizeof(rails) / sizeof(rails[0]))) {
                snprintf(err, err_len, "more than 32 rails");
                return -EBADMSG;
            }
            snprintf(rails[i].name, sizeof(rails[i].name), "%s", name);
            rails[i].amps = rails[i].volts = NAN;
            n_rails++;
        }
        if (kind == 'A')
            rails[i].amps = v;
        else
            rails[i].volts = v;
    }
    double sum = 0;
    int pairs = 0;
    for (int i = 0; i < n_rails; i++) {
        if (isfinite(rails[i].amps) && isfinite(rails[i].volts)) {
            sum += rails[i].amps * rails[i].volts;
            pairs++;
        }
    }
    if (pairs == 0) {
        snprintf(err, err_len, "no rail with both a current (_A) and a voltage (_V) reading");
        return -EBADMSG;
    }
    *ret_w = sum;
    if (ret_rails)
        *ret_rails = pairs;
    return 0;
}

/* ---- the source: run the command, parse its output ---- */

struct pmic_state {
    char *argv[PMIC_ARGS_MAX + 1];
    char buf[512]; /* the command, split in place */
    int rails;
};

/* The program exists and is executable (searched in PATH when it has no slash). */
static int find_program(const char *prog)
{
    if (strchr(prog, '/'))
        return access(prog, X_OK) == 0 ? 0 : -errno;
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = "/usr/local/bin:/usr/bin:/bin";
    char dir[4096];
    while (*path) {
        size_t n = strcspn(path, ":");
        if (n && n + 1 + strlen(prog) < sizeof(dir)) {
            snprintf(dir, sizeof(dir), "%.*s/%s", (int)n, path, prog);
            if (access(dir, X_OK) == 0)
                return 0;
        }
        path += n + (path[n] == ':');
    }
    return -ENOENT;
}

static int run_command(struct pmic_state *st, char *out, size_t cap, size_t *ret_len)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0)
        return -errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addopen(&fa, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    int rc = posix_spawnp(&pid, st->argv[0], &fa, NULL, st->argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    if (rc != 0) {
        close(fds[0]);
        return -rc;
    }
    size_t len = 0;
    uint64_t deadline = cmn_now_ns() + (uint64_t)PMIC_TIMEOUT_MS * CMN_NS_PER_MS;
    int r = 0;
    for (;;) {
        uint64_t now = cmn_now_ns();
        if (now >= deadline) {
            r = -ETIMEDOUT;
            break;
        }
        struct pollfd p = {.fd = fds[0], .events = POLLIN};
        int pr = poll(&p, 1, (int)((deadline - now) / CMN_NS_PER_MS) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0) {
            r = pr < 0 ? -errno : -ETIMEDOUT;
            break;
        }
        char tmp[1024];
        ssize_t got = read(fds[0], tmp, sizeof(tmp));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        size_t take = (size_t)got < cap - 1 - len ? (size_t)got : cap - 1 - len;
        memcpy(out + len, tmp, take);
        len += take;
    }
    close(fds[0]);
    if (r < 0)
        kill(pid, SIGKILL);
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (r == 0 && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        r = -EIO;
    out[len] = '\0';
    *ret_len = len;
    return r;
}

static int pmic_sample(struct pmic_state *st, double *ret_w, char *desc, size_t desc_len)
{
    char *out = malloc(PMIC_OUTPUT_MAX);
    if (!out)
        return -ENOMEM;
    size_t len = 0;
    int r = run_command(st, out, PMIC_OUTPUT_MAX, &len);
    if (r < 0) {
        if (desc)
            snprintf(desc, desc_len, "%s: %s", st->argv[0],
                     r == -EIO ? "exited with an error" : strerror(-r));
    } else {
        char err[160];
        r = tel_pmic_parse(out, len, ret_w, &st->rails, err, sizeof(err));
        if (r < 0 && desc)
            snprintf(desc, desc_len, "%s output: %s", st->argv[0], err);
    }
    free(out);
    return r;
}

static int pmic_open(const struct tel_power_params *p, void **ret_state, char *desc,
                     size_t desc_len)
{
    if (!p->pmic_command || !p->pmic_command[0])
        return -ENOENT;
    struct pmic_state *st = calloc(1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    snprintf(st->buf, sizeof(st->buf), "%s", p->pmic_command);
    int n = 0;
    for (char *save = NULL, *tok = strtok_r(st->buf, " \t", &save); tok && n < PMIC_ARGS_MAX;
         tok = strtok_r(NULL, " \t", &save))
        st->argv[n++] = tok;
    st->argv[n] = NULL;
    int r = n ? find_program(st->argv[0]) : -ENOENT;
    double w = 0;
    if (r == 0)
        r = pmic_sample(st, &w, desc, desc_len);
    if (r < 0) {
        free(st);
        return r;
    }
    snprintf(desc, desc_len, "pmic: %d SoC rails from '%s'", st->rails, p->pmic_command);
    *ret_state = st;
    return 0;
}

static int pmic_read(void *state, const struct tel_power_params *p,
                     const struct tel_power_inputs *in, struct tel_src_reading *ret)
{
    (void)p;
    (void)in;
    ret->is_energy = 0;
    return pmic_sample(state, &ret->power_w, NULL, 0);
}

static void pmic_close(void *state)
{
    free(state);
}

const struct tel_src_ops tel_src_pmic = {
    .source = TEL_SOURCE_PMIC,
    .open = pmic_open,
    .read = pmic_read,
    .close = pmic_close,
};
