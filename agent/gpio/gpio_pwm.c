/* sysfs PWM for the fan (see gpio_pwm.h). */
#include "gpio_pwm.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct gpio_pwm {
    int duty_fd;
    uint32_t period_ns;
    char where[64];
};

static int write_at(int fd, const char *text)
{
    size_t n = strlen(text);
    ssize_t w = pwrite(fd, text, n, 0);
    if (w < 0)
        return -errno;
    /* sysfs ignores the size; a plain file (a test's fake tree) must not keep a longer
     * earlier value's tail */
    int t = ftruncate(fd, (off_t)n);
    (void)t;
    return (size_t)w == n ? 0 : -EIO;
}

static int write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = write_at(fd, text);
    close(fd);
    return rc;
}

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int gpio_pwm_open(const char *root, int chip, int channel, uint32_t period_ns,
                  struct gpio_pwm **ret, char *err, size_t err_len)
{
    if (!root || !*root)
        root = "/";
    const char *sep = root[strlen(root) - 1] == '/' ? "" : "/";
    char chip_dir[PATH_MAX], dir[PATH_MAX + 16], path[PATH_MAX + 32], num[32];
    snprintf(chip_dir, sizeof(chip_dir), "%s%ssys/class/pwm/pwmchip%d", root, sep, chip);
    if (!is_dir(chip_dir)) {
        snprintf(err, err_len, "no PWM chip %s", chip_dir);
        return -ENOENT;
    }
    snprintf(dir, sizeof(dir), "%s/pwm%d", chip_dir, channel);
    if (!is_dir(dir)) {
        snprintf(path, sizeof(path), "%s/export", chip_dir);
        snprintf(num, sizeof(num), "%d", channel);
        int rc = write_file(path, num);
        if (rc < 0) {
            snprintf(err, err_len, "cannot export PWM channel %d: %s: %s", channel, path,
                     strerror(-rc));
            return rc;
        }
        if (!is_dir(dir)) {
            snprintf(err, err_len, "%s did not appear after export", dir);
            return -ENOENT;
        }
    }
    struct gpio_pwm *p = calloc(1, sizeof(*p));
    if (!p)
        return -ENOMEM;
    p->period_ns = period_ns;
    snprintf(p->where, sizeof(p->where), "pwmchip%d/pwm%d", chip, channel);
    /* duty first: the kernel refuses a period shorter than the duty cycle in force */
    snprintf(path, sizeof(path), "%s/duty_cycle", dir);
    p->duty_fd = open(path, O_WRONLY | O_CLOEXEC);
    int rc = p->duty_fd < 0 ? -errno : write_at(p->duty_fd, "0");
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/period", dir);
        snprintf(num, sizeof(num), "%u", period_ns);
        rc = write_file(path, num);
    }
    if (rc == 0) {
        snprintf(path, sizeof(path), "%s/enable", dir);
        rc = write_file(path, "1");
    }
    if (rc < 0) {
        snprintf(err, err_len, "PWM %s: %s", path, strerror(-rc));
        if (p->duty_fd >= 0)
            close(p->duty_fd);
        free(p);
        return rc;
    }
    *ret = p;
    return 0;
}

int gpio_pwm_set_duty(struct gpio_pwm *p, double pct)
{
    if (!(pct > 0))
        pct = 0;
    if (pct > 100)
        pct = 100;
    char num[32];
    snprintf(num, sizeof(num), "%llu",
             (unsigned long long)((double)p->period_ns * pct / 100.0 + 0.5));
    return write_at(p->duty_fd, num);
}

void gpio_pwm_close(struct gpio_pwm *p)
{
    if (!p)
        return;
    gpio_pwm_set_duty(p, 100);
    close(p->duty_fd);
    free(p);
}

const char *gpio_pwm_where(const struct gpio_pwm *p)
{
    return p->where;
}
