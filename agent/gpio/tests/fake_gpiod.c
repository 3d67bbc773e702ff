/* The fake chip library (see fake_gpiod.h). Only what gpio_chip.c uses is defined: a test that
 * links libgpiod as well fails its "real libgpiod not loaded" check if one is missing. */
#include "fake_gpiod.h"

#include <errno.h>
#include <fcntl.h>
#include <gpiod.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_CHIPS 4
#define MAX_LINES 64

struct fake_line_state {
    char name[32];
    char consumer[32];
    bool busy_other; /* held by someone else */
    bool requested;
    const struct gpiod_chip *owner; /* the handle it was requested through */
    bool output;
    bool active_low;
    bool edges;
    int level; /* physical */
    unsigned writes;
    int pipe_r, pipe_w;
};

struct fake_chip_state {
    char name[32];
    char label[32];
    unsigned n_lines;
    struct fake_line_state lines[MAX_LINES];
};

static struct fake_chip_state chips[MAX_CHIPS];
static int n_chips;
static int open_chips;
static unsigned fail_set_n;
static int fail_set_err;

/* The handles libgpiod would allocate. */
struct gpiod_line {
    struct gpiod_chip *chip;
    unsigned offset;
};

struct gpiod_chip {
    int index;
    struct gpiod_line lines[MAX_LINES];
};

struct gpiod_chip_iter {
    int next;
    struct gpiod_chip *last;
};

static struct fake_line_state *state_of(struct gpiod_line *line)
{
    return &chips[line->chip->index].lines[line->offset];
}

void fake_gpiod_reset(void)
{
    for (int c = 0; c < n_chips; c++)
        for (unsigned i = 0; i < chips[c].n_lines; i++)
            if (chips[c].lines[i].pipe_r >= 0) {
                close(chips[c].lines[i].pipe_r);
                close(chips[c].lines[i].pipe_w);
            }
    memset(chips, 0, sizeof(chips));
    n_chips = 0;
    open_chips = 0;
    fail_set_n = 0;
}

int fake_gpiod_add_chip(const char *label, unsigned n_lines, const char *const *names)
{
    if (n_chips == MAX_CHIPS || n_lines > MAX_LINES)
        abort();
    struct fake_chip_state *c = &chips[n_chips];
    snprintf(c->name, sizeof(c->name), "gpiochip%d", n_chips);
    snprintf(c->label, sizeof(c->label), "%s", label);
    c->n_lines = n_lines;
    for (unsigned i = 0; i < n_lines; i++) {
        c->lines[i].pipe_r = c->lines[i].pipe_w = -1;
        if (names && names[i])
            snprintf(c->lines[i].name, sizeof(c->lines[i].name), "%s", names[i]);
    }
    return n_chips++;
}

void fake_gpiod_set_busy(int chip, unsigned offset, const char *consumer)
{
    struct fake_line_state *s = &chips[chip].lines[offset];
    s->busy_other = true;
    snprintf(s->consumer, sizeof(s->consumer), "%s", consumer);
}

int fake_gpiod_output(int chip, unsigned offset)
{
    struct fake_line_state *s = &chips[chip].lines[offset];
    return s->output ? s->level : -1; /* the kernel keeps an output's level after release */
}

unsigned fake_gpiod_writes(int chip, unsigned offset)
{
    return chips[chip].lines[offset].writes;
}

bool fake_gpiod_requested(int chip, unsigned offset)
{
    return chips[chip].lines[offset].requested;
}

void fake_gpiod_input(int chip, unsigned offset, int level)
{
    struct fake_line_state *s = &chips[chip].lines[offset];
    level = level ? 1 : 0;
    if (s->level == level)
        return;
    s->level = level;
    if (s->requested && s->edges && s->pipe_w >= 0) {
        struct gpiod_line_event ev = {0};
        clock_gettime(CLOCK_MONOTONIC, &ev.ts);
        /* the kernel reports the logical edge */
        ev.event_type =
            (level ^ s->active_low) ? GPIOD_LINE_EVENT_RISING_EDGE : GPIOD_LINE_EVENT_FALLING_EDGE;
        if (write(s->pipe_w, &ev, sizeof(ev)) != sizeof(ev))
            abort();
    }
}

void fake_gpiod_fail_set(unsigned n, int err)
{
    fail_set_n = n;
    fail_set_err = err;
}

int fake_gpiod_open_chips(void)
{
    return open_chips;
}

/* ---- the libgpiod v1.6 functions ---- */

static struct gpiod_chip *open_index(int index)
{
    struct gpiod_chip *c = calloc(1, sizeof(*c));
    if (!c) {
        errno = ENOMEM;
        return NULL;
    }
    c->index = index;
    for (unsigned i = 0; i < MAX_LINES; i++)
        c->lines[i] = (struct gpiod_line){.chip = c, .offset = i};
    open_chips++;
    return c;
}

struct gpiod_chip *gpiod_chip_open_lookup(const char *descr)
{
    for (int i = 0; i < n_chips; i++) {
        char path[64], num[16];
        snprintf(path, sizeof(path), "/dev/%s", chips[i].name);
        snprintf(num, sizeof(num), "%d", i);
        if (strcmp(descr, chips[i].name) == 0 || strcmp(descr, path) == 0 ||
            strcmp(descr, num) == 0 || strcmp(descr, chips[i].label) == 0)
            return open_index(i);
    }
    errno = ENOENT;
    return NULL;
}

void gpiod_chip_close(struct gpiod_chip *chip)
{
    if (!chip)
        return;
    for (unsigned i = 0; i < chips[chip->index].n_lines; i++)
        if (chips[chip->index].lines[i].requested && chips[chip->index].lines[i].owner == chip)
            gpiod_line_release(&chip->lines[i]);
    open_chips--;
    free(chip);
}

const char *gpiod_chip_name(struct gpiod_chip *chip)
{
    return chips[chip->index].name;
}

const char *gpiod_chip_label(struct gpiod_chip *chip)
{
    return chips[chip->index].label;
}

unsigned int gpiod_chip_num_lines(struct gpiod_chip *chip)
{
    return chips[chip->index].n_lines;
}

struct gpiod_line *gpiod_chip_get_line(struct gpiod_chip *chip, unsigned int offset)
{
    if (offset >= chips[chip->index].n_lines) {
        errno = EINVAL;
        return NULL;
    }
    return &chip->lines[offset];
}

struct gpiod_line *gpiod_chip_find_line(struct gpiod_chip *chip, const char *name)
{
    struct fake_chip_state *c = &chips[chip->index];
    for (unsigned i = 0; i < c->n_lines; i++)
        if (c->lines[i].name[0] && strcmp(c->lines[i].name, name) == 0)
            return &chip->lines[i];
    errno = ENOENT;
    return NULL;
}

struct gpiod_line *gpiod_line_find(const char *name)
{
    for (int i = 0; i < n_chips; i++) {
        struct fake_chip_state *c = &chips[i];
        for (unsigned j = 0; j < c->n_lines; j++) {
            if (c->lines[j].name[0] && strcmp(c->lines[j].name, name) == 0) {
                struct gpiod_chip *chip = open_index(i);
                return chip ? &chip->lines[j] : NULL;
            }
        }
    }
    errno = ENOENT;
    return NULL;
}

struct gpiod_chip *gpiod_line_get_chip(struct gpiod_line *line)
{
    return line->chip;
}

unsigned int gpiod_line_offset(struct gpiod_line *line)
{
    return line->offset;
}

const char *gpiod_line_name(struct gpiod_line *line)
{
    const char *n = state_of(line)->name;
    return n[0] ? n : NULL;
}

const char *gpiod_line_consumer(struct gpiod_line *line)
{
    struct fake_line_state *s = state_of(line);
    return s->busy_other || s->requested ? s->consumer : NULL;
}

int gpiod_line_direction(struct gpiod_line *line)
{
    return state_of(line)->output ? GPIOD_LINE_DIRECTION_OUTPUT : GPIOD_LINE_DIRECTION_INPUT;
}

int gpiod_line_active_state(struct gpiod_line *line)
{
    return state_of(line)->active_low ? GPIOD_LINE_ACTIVE_STATE_LOW : GPIOD_LINE_ACTIVE_STATE_HIGH;
}

bool gpiod_line_is_used(struct gpiod_line *line)
{
    struct fake_line_state *s = state_of(line);
    return s->busy_other || s->requested;
}

int gpiod_line_request(struct gpiod_line *line, const struct gpiod_line_request_config *config,
                       int default_val)
{
    struct fake_line_state *s = state_of(line);
    if (s->busy_other || s->requested) {
        errno = EBUSY;
        return -1;
    }
    s->active_low = config->flags & GPIOD_LINE_REQUEST_FLAG_ACTIVE_LOW;
    s->output = config->request_type == GPIOD_LINE_REQUEST_DIRECTION_OUTPUT;
    s->edges = config->request_type == GPIOD_LINE_REQUEST_EVENT_BOTH_EDGES;
    if (s->edges) {
        int p[2];
        if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0)
            return -1;
        s->pipe_r = p[0];
        s->pipe_w = p[1];
    }
    if (s->output) {
        s->level = (default_val ? 1 : 0) ^ s->active_low;
        s->writes++;
    }
    snprintf(s->consumer, sizeof(s->consumer), "%s", config->consumer);
    s->requested = true;
    s->owner = line->chip;
    return 0;
}

void gpiod_line_release(struct gpiod_line *line)
{
    struct fake_line_state *s = state_of(line);
    if (!s->requested)
        return;
    s->requested = false;
    s->consumer[0] = '\0';
    if (s->pipe_r >= 0) {
        close(s->pipe_r);
        close(s->pipe_w);
        s->pipe_r = s->pipe_w = -1;
    }
    /* the kernel keeps an output's level after release; so does the fake */
}

int gpiod_line_get_value(struct gpiod_line *line)
{
    struct fake_line_state *s = state_of(line);
    if (!s->requested) {
        errno = EPERM;
        return -1;
    }
    return s->level ^ s->active_low;
}

int gpiod_line_set_value(struct gpiod_line *line, int value)
{
    struct fake_line_state *s = state_of(line);
    if (!s->requested || !s->output) {
        errno = EPERM;
        return -1;
    }
    if (fail_set_n) {
        fail_set_n--;
        errno = fail_set_err;
        return -1;
    }
    s->level = (value ? 1 : 0) ^ s->active_low;
    s->writes++;
    return 0;
}

int gpiod_line_event_get_fd(struct gpiod_line *line)
{
    struct fake_line_state *s = state_of(line);
    if (!s->requested || !s->edges) {
        errno = EPERM;
        return -1;
    }
    return s->pipe_r;
}

int gpiod_line_event_read_multiple(struct gpiod_line *line, struct gpiod_line_event *events,
                                   unsigned int num_events)
{
    struct fake_line_state *s = state_of(line);
    if (s->pipe_r < 0) {
        errno = EPERM;
        return -1;
    }
    ssize_t n = read(s->pipe_r, events, num_events * sizeof(*events));
    if (n < 0)
        return -1;
    return (int)(n / (ssize_t)sizeof(*events));
}

struct gpiod_chip_iter *gpiod_chip_iter_new(void)
{
    return calloc(1, sizeof(struct gpiod_chip_iter));
}

struct gpiod_chip *gpiod_chip_iter_next(struct gpiod_chip_iter *iter)
{
    if (iter->last)
        gpiod_chip_close(iter->last);
    iter->last = iter->next < n_chips ? open_index(iter->next++) : NULL;
    return iter->last;
}

void gpiod_chip_iter_free(struct gpiod_chip_iter *iter)
{
    if (iter->last)
        gpiod_chip_close(iter->last);
    free(iter);
}
