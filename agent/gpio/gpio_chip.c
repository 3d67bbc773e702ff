/* The one file that calls libgpiod (v1.6 API), see gpio_chip.h. */
#include "gpio_chip.h"

#include <errno.h>
#include <gpiod.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gpio_line {
    struct gpiod_chip *chip;
    struct gpiod_line *line;
    char where[96];
};

static int errno_or(int fallback)
{
    return errno ? -errno : -fallback;
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static int bias_flag(enum gpio_bias b)
{
    switch (b) {
    case GPIO_BIAS_PULL_UP:
        return GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_UP;
    case GPIO_BIAS_PULL_DOWN:
        return GPIOD_LINE_REQUEST_FLAG_BIAS_PULL_DOWN;
    case GPIO_BIAS_DISABLE:
        return GPIOD_LINE_REQUEST_FLAG_BIAS_DISABLE;
    case GPIO_BIAS_AS_IS:
        break;
    }
    return 0;
}

/* Finds the chip and line the request names; on success l->chip and l->line are set. */
static int find_line(const struct gpio_line_request *r, struct gpio_line *l, char *err,
                     size_t err_len)
{
    if (!r->chip || !*r->chip) {
        errno = 0;
        l->line = r->name ? gpiod_line_find(r->name) : NULL;
        if (!l->line) {
            int e = errno_or(ENOENT);
            snprintf(err, err_len, "no GPIO line named '%s' on any chip", r->name ? r->name : "");
            return e;
        }
        l->chip = gpiod_line_get_chip(l->line);
        return 0;
    }
    errno = 0;
    l->chip = gpiod_chip_open_lookup(r->chip);
    if (!l->chip) {
        int e = errno_or(ENOENT);
        snprintf(err, err_len, "GPIO chip '%s': %s", r->chip,
                 e == -ENOENT ? "no such chip" : strerror(-e));
        return e;
    }
    errno = 0;
    if (r->name)
        l->line = gpiod_chip_find_line(l->chip, r->name);
    else if (r->offset < gpiod_chip_num_lines(l->chip))
        l->line = gpiod_chip_get_line(l->chip, r->offset);
    if (!l->line) {
        int e = errno_or(ENOENT);
        if (r->name)
            snprintf(err, err_len, "GPIO chip %s has no line named '%s'", gpiod_chip_name(l->chip),
                     r->name);
        else
            snprintf(err, err_len, "GPIO chip %s has no line %u (it has %u)",
                     gpiod_chip_name(l->chip), r->offset, gpiod_chip_num_lines(l->chip));
        gpiod_chip_close(l->chip);
        l->chip = NULL;
        return e == -EINVAL ? -ENOENT : e;
    }
    return 0;
}

int gpio_line_open(const struct gpio_line_request *r, struct gpio_line **ret, char *err,
                   size_t err_len)
{
    struct gpio_line *l = calloc(1, sizeof(*l));
    if (!l)
        return -ENOMEM;
    int rc = find_line(r, l, err, err_len);
    if (rc < 0) {
        free(l);
        return rc;
    }
    const char *name = gpiod_line_name(l->line);
    snprintf(l->where, sizeof(l->where), "%s:%u%s%s%s", gpiod_chip_name(l->chip),
             gpiod_line_offset(l->line), name ? " (" : "", name ? name : "", name ? ")" : "");
    struct gpiod_line_request_config rc_cfg = {
        .consumer = r->consumer ? r->consumer : "ember",
        .request_type = r->mode == GPIO_LINE_OUTPUT ? GPIOD_LINE_REQUEST_DIRECTION_OUTPUT
                                                    : GPIOD_LINE_REQUEST_EVENT_BOTH_EDGES,
        .flags = (r->active_low ? GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW : 0) | bias_flag(r->bias),
    };
    errno = 0;
    if (gpiod_line_request(l->line, &rc_cfg, r->initial ? 1 : 0) < 0) {
        rc = errno_or(EIO);
        const char *holder = gpiod_line_is_used(l->line) ? gpiod_line_consumer(l->line) : NULL;
        if (rc == -EBUSY)
            snprintf(err, err_len, "GPIO line %s is busy (used by %s)", l->where,
                     holder && *holder ? holder : "another consumer");
        else
            snprintf(err, err_len, "GPIO line %s: cannot request it: %s", l->where, strerror(-rc));
        gpiod_chip_close(l->chip);
        free(l);
        return rc;
    }
    *ret = l;
    return 0;
}

void gpio_line_close(struct gpio_line *l)
{
    if (!l)
        return;
    gpiod_line_release(l->line);
    gpiod_chip_close(l->chip);
    free(l);
}

int gpio_line_set(struct gpio_line *l, int value)
{
    errno = 0;
    return gpiod_line_set_value(l->line, value ? 1 : 0) < 0 ? errno_or(EIO) : 0;
}

int gpio_line_get(struct gpio_line *l)
{
    errno = 0;
    int v = gpiod_line_get_value(l->line);
    return v < 0 ? errno_or(EIO) : v;
}

int gpio_line_fd(const struct gpio_line *l)
{
    return gpiod_line_event_get_fd(l->line);
}

int gpio_line_drain_events(struct gpio_line *l)
{
    struct gpiod_line_event ev[16];
    errno = 0;
    int n = gpiod_line_event_read_multiple(l->line, ev, 16);
    return n < 0 ? errno_or(EIO) : n;
}

const char *gpio_line_where(const struct gpio_line *l)
{
    return l->where;
}

static void fill_info(struct gpiod_line *line, struct gpio_line_info *li)
{
    li->offset = gpiod_line_offset(line);
    copy_str(li->name, sizeof(li->name), gpiod_line_name(line));
    copy_str(li->consumer, sizeof(li->consumer), gpiod_line_consumer(line));
    li->used = gpiod_line_is_used(line);
    li->output = gpiod_line_direction(line) == GPIOD_LINE_DIRECTION_OUTPUT;
    li->active_low = gpiod_line_active_state(line) == GPIOD_LINE_ACTIVE_STATE_LOW;
}

int gpio_line_lookup(const struct gpio_line_request *r, struct gpio_line_info *ret, char *where,
                     size_t where_len, char *err, size_t err_len)
{
    struct gpio_line l = {0};
    int rc = find_line(r, &l, err, err_len);
    if (rc < 0)
        return rc;
    memset(ret, 0, sizeof(*ret));
    fill_info(l.line, ret);
    snprintf(where, where_len, "%s:%u%s%s%s", gpiod_chip_name(l.chip), ret->offset,
             ret->name[0] ? " (" : "", ret->name, ret->name[0] ? ")" : "");
    gpiod_chip_close(l.chip);
    return 0;
}

int gpio_chips_list(gpio_chip_fn fn, void *user)
{
    errno = 0;
    struct gpiod_chip_iter *it = gpiod_chip_iter_new();
    if (!it)
        return errno == ENOENT ? 0 : errno_or(EIO); /* no /dev at all: no chips */
    int n_chips = 0;
    struct gpiod_chip *chip;
    while ((chip = gpiod_chip_iter_next(it)) != NULL) { /* closes the previous chip */
        struct gpio_chip_info ci = {.n_lines = gpiod_chip_num_lines(chip)};
        copy_str(ci.name, sizeof(ci.name), gpiod_chip_name(chip));
        copy_str(ci.label, sizeof(ci.label), gpiod_chip_label(chip));
        struct gpio_line_info *li = calloc(ci.n_lines ? ci.n_lines : 1, sizeof(*li));
        if (!li) {
            gpiod_chip_iter_free(it);
            return -ENOMEM;
        }
        for (unsigned i = 0; i < ci.n_lines; i++) {
            struct gpiod_line *line = gpiod_chip_get_line(chip, i);
            li[i].offset = i;
            if (line)
                fill_info(line, &li[i]);
        }
        fn(user, &ci, li, ci.n_lines);
        free(li);
        n_chips++;
    }
    gpiod_chip_iter_free(it);
    return n_chips;
}
