/* A hook for calibration: when set on a context, every matrix product's input rows (after the
 * fused RMSNorm or SwiGLU, before any activation quantization) are shown to the observer with the
 * weight they multiply, identified by its data pointer (the file mapping's tensor data when the
 * model is loaded with use_mmap). Used by `ember quantize` to collect importance statistics; it
 * costs nothing when unset. Private to the engine. */
#ifndef ENGINE_ACT_OBSERVER_H
#define ENGINE_ACT_OBSERVER_H

#include <stdint.h>

#include "engine/engine.h"

/* One input row of n floats about to be multiplied by the weight whose data is weight_data.
 * Called on the thread that runs eng_decode, once per token row. */
typedef void (*eng_act_observer_fn)(void *user, const void *weight_data, const float *row,
                                    int64_t n);

void eng_context_set_act_observer(struct eng_context *ctx, eng_act_observer_fn fn, void *user);

#endif
