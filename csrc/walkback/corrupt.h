// Corruption C(x~ | x) on the CPU, one row (chain) at a time or a whole batch.
#pragma once
#include <cstdint>

#include "walkback/common.h"
#include "walkback/rng.h"

namespace wb {

// out[i] = corrupt(x[i]) for units first_unit .. first_unit + units - 1 of one chain at one
// step (first_unit a multiple of 4); scratch holds `units` floats. x and out may alias.
template <class T>
void corrupt_row(Corruption kind, T param, const T* x, T* out, int64_t first_unit,
                 int64_t units, StreamKey key, uint32_t chain, uint32_t step, float* scratch);

// corrupt_row with its numbers already drawn: drawn[i] is unit i's uniform (or normal, for
// Gaussian corruption) from the corruption stream. For callers that draw a block of rows at
// once (uniform_row_block).
template <class T>
void corrupt_drawn(Corruption kind, T param, const T* x, T* out, int64_t units,
                   const float* drawn);

// A (chains x units) batch, rows in parallel; row c is chain first_chain + c.
template <class T>
void corrupt_batch(Corruption kind, T param, const T* x, T* out, int64_t chains, int64_t units,
                   uint64_t seed, uint32_t step, uint32_t first_chain);

}  // namespace wb
