/* Fuzz target: the simulator's profile parser (users describe their own boards in it). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "governor/sim.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct gov_sim_profile *p = malloc(sizeof(*p));
    if (text && p) {
        memcpy(text, data, size);
        text[size] = 0;
        char err[256];
        if (gov_sim_profile_parse(text, p, err, sizeof(err)) == 0) {
            /* a profile that parses must give the controller valid clusters */
            for (unsigned i = 0; i < p->n_clusters; i++) {
                struct gov_cluster_info ci;
                gov_sim_cluster_info(p, i, &ci);
                if (gov_cluster_info_validate(&ci, err, sizeof(err)) != 0)
                    abort();
            }
        }
    }
    free(p);
    free(text);
    return 0;
}
