/* GPIO lines through libgpiod (the v1.6 API Debian 12 ships). This file's .c is the only place
 * in Ember that calls gpiod_*: tests link a fake chip library (tests/fake_gpiod.c) in place of
 * libgpiod, and a later move of GPIO into the privileged helper moves this one file. Values are
 * logical (1 = active): active-low lines are inverted by the kernel, as requested. */
#ifndef AGENT_GPIO_CHIP_H
#define AGENT_GPIO_CHIP_H

#include <stdbool.h>
#include <stddef.h>

struct gpio_line;

enum gpio_line_mode {
    GPIO_LINE_OUTPUT,
    GPIO_LINE_INPUT_EDGES, /* an input with both-edge events on gpio_line_fd */
};

enum gpio_bias { GPIO_BIAS_AS_IS, GPIO_BIAS_PULL_UP, GPIO_BIAS_PULL_DOWN, GPIO_BIAS_DISABLE };

struct gpio_line_request {
    const char *chip; /* name, path, number or label; NULL or "": find `name` on every chip */
    const char *name; /* a line name; NULL: use offset */
    unsigned offset;
    bool active_low;
    enum gpio_bias bias;
    enum gpio_line_mode mode;
    int initial; /* outputs: the logical value set by the request itself */
    const char *consumer;
};

/* Requests one line. -ENOENT when the chip or line does not exist, -EBUSY when another consumer
 * holds it, other -errno; err names the chip and line (and the holder). */
int gpio_line_open(const struct gpio_line_request *r, struct gpio_line **ret, char *err,
                   size_t err_len);
/* Releases the line and closes its chip. NULL is fine. */
void gpio_line_close(struct gpio_line *l);
int gpio_line_set(struct gpio_line *l, int value);
/* The logical value (0/1) or -errno. */
int gpio_line_get(struct gpio_line *l);
/* Input lines: the descriptor that turns readable on an edge. */
int gpio_line_fd(const struct gpio_line *l);
/* Reads the pending edge events (at least one must be pending: call when the fd is readable);
 * returns how many, or -errno. Their kind does not matter: the debouncer reads the level. */
int gpio_line_drain_events(struct gpio_line *l);
/* "gpiochip0:17 (STATUS_LED)" */
const char *gpio_line_where(const struct gpio_line *l);

/* ---- listing, for `ember gpio status` ---- */

struct gpio_line_info {
    unsigned offset;
    char name[32];
    char consumer[32];
    bool used, output, active_low;
};

struct gpio_chip_info {
    char name[32];
    char label[32];
    unsigned n_lines;
};

/* Finds the line a request names without requesting it: its info and "chip:offset (name)".
 * -ENOENT (err says which) when the chip or line does not exist. */
int gpio_line_lookup(const struct gpio_line_request *r, struct gpio_line_info *ret, char *where,
                     size_t where_len, char *err, size_t err_len);

/* Calls fn once per chip with every line's info. Returns the number of chips or -errno. */
typedef void (*gpio_chip_fn)(void *user, const struct gpio_chip_info *chip,
                             const struct gpio_line_info *lines, unsigned n_lines);
int gpio_chips_list(gpio_chip_fn fn, void *user);

#endif
