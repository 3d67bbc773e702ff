/* A fake GPIO chip library for tests: it defines the libgpiod v1.6 functions gpio_chip.c calls
 * (and nothing else), over chips the test declares. Outputs record the physical level they drive
 * (after active-low); inputs take a physical level from the test and, when requested for edges,
 * queue a gpiod_line_event on a pipe whose read end is the line's event fd (so a real epoll loop
 * sees it). Failures are injected per line (busy) or per call (set fails). */
#ifndef FAKE_GPIOD_H
#define FAKE_GPIOD_H

#include <stdbool.h>

/* Forgets every chip (and closes every fd the fake made). */
void fake_gpiod_reset(void);
/* Adds gpiochipN (N = order of addition) with a label and n_lines lines; names may be NULL or
 * hold n_lines entries (NULL entries for unnamed lines). Returns the chip index. */
int fake_gpiod_add_chip(const char *label, unsigned n_lines, const char *const *names);
/* Marks a line as held by another consumer: requests fail with EBUSY. */
void fake_gpiod_set_busy(int chip, unsigned offset, const char *consumer);
/* The physical level an output drives (kept after release, as the kernel does; -1 when the
 * line was never an output). */
int fake_gpiod_output(int chip, unsigned offset);
/* How many times the line's value was written (outputs). */
unsigned fake_gpiod_writes(int chip, unsigned offset);
/* Sets an input's physical level; queues an edge event when it changed and edges are on. */
void fake_gpiod_input(int chip, unsigned offset, int level);
/* Whether the line is requested now (by us). */
bool fake_gpiod_requested(int chip, unsigned offset);
/* The next n gpiod_line_set_value calls fail with err. */
void fake_gpiod_fail_set(unsigned n, int err);
/* Chips opened and not yet closed (leak check). */
int fake_gpiod_open_chips(void);

#endif
