// Many Philox blocks at once on the CPU: the uniforms of units 4*g0 .. 4*(g0 + groups) - 1 of
// one chain. An AVX2 path runs 8 blocks per instruction stream (GCC vectorizes the scalar
// Philox with 64-bit multiplies, which AVX2 lacks and AVX-512 runs slowly); it is checked
// bitwise against rng.h's scalar Philox in tests/test_rng.py.
#pragma once
#include <cstdint>

#include "walkback/rng.h"

namespace wb {

// out[4 * i + lane] = u01(lane `lane` of block g0 + i), i < groups.
void uniform_blocks(StreamKey key, uint32_t g0, int64_t groups, uint32_t chain, uint32_t step,
                    uint32_t stream, float* out);

// Whether uniform_blocks takes the AVX2 path on this machine.
bool uniform_blocks_simd();

}  // namespace wb
