/* panel_avx512.c over SIMDe's portable AVX-512, for engcore_pack_avx512_simde: the same source,
 * its fill function renamed (eng_panels_fill_avx512_simde), runnable on any x86-64 with AVX2. */
#define ENG_SIMDE 1
#include "panel_avx512.c"
