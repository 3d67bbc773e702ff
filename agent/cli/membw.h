/* Memory read bandwidth of this machine, the roof that token generation runs under: each decode
 * step streams every weight once, so tokens/s can reach at most bandwidth ÷ bytes per token.
 * Measured as a read-only sum over a buffer far larger than the caches (at least 256 MiB of
 * anonymous memory with transparent huge pages), split over N threads, best of a few passes. */
#ifndef AGENT_MEMBW_H
#define AGENT_MEMBW_H

#include <stddef.h>
#include <stdint.h>

/* Bandwidth in GB/s (1e9 bytes/s) with threads[i] threads, into ret_gbps[i]. Runs in a child
 * process so the buffer does not count in the caller's peak resident memory; takes well under a
 * second on a desktop CPU. Returns 0 or -errno. */
int agent_membw_measure(const uint32_t *threads, size_t n, double *ret_gbps);

#endif
