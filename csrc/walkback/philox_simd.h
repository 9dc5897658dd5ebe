// Many Philox blocks at once on the CPU: the uniforms of units 4*g0 .. 4*(g0 + groups) - 1 of
// one chain. AVX-512 and AVX2 paths run 16 or 8 blocks per instruction stream (GCC vectorizes
// the scalar Philox with 64-bit multiplies, which AVX2 lacks and AVX-512 runs slowly); each is
// checked bitwise against rng.h's scalar Philox in tests/test_rng.py.
#pragma once
#include <cstdint>

#include "walkback/rng.h"

namespace wb {

// out[4 * i + lane] = u01(lane `lane` of block g0 + i), i < groups.
void uniform_blocks(StreamKey key, uint32_t g0, int64_t groups, uint32_t chain, uint32_t step,
                    uint32_t stream, float* out);

// out[4 * c + lane] = u01(lane `lane` of block `group` of chain chain0 + c), c < chains: one
// block of many chains, for rows of a few units (uniform_blocks would fill 16 lanes per row
// and keep one or two).
void chain_blocks(StreamKey key, uint32_t group, uint32_t chain0, int64_t chains, uint32_t step,
                  uint32_t stream, float* out);

// out[r * ld + 4 * i + lane] = u01(lane `lane` of block g0 + i of chain chain0 + r), for
// r < rows and i < groups: uniform_blocks for several chains' rows at once, whose SIMD passes
// take blocks of several rows together (a row of a few dozen blocks alone would not fill the
// four interleaved sets a pass runs).
void uniform_block_rows(StreamKey key, uint32_t g0, int64_t groups, uint32_t chain0,
                        int64_t rows, int64_t ld, uint32_t step, uint32_t stream, float* out);

// Whether uniform_blocks takes a SIMD path on this machine.
bool uniform_blocks_simd();

// One path forced (0 scalar, 1 AVX2, 2 AVX-512), for the tests: uniform_blocks (from block g0
// of chain0, `count` blocks) or, over_chains, chain_blocks (block g0 of `count` chains from
// chain0); false when this machine (or build) lacks the path.
bool philox_blocks_path(int path, StreamKey key, uint32_t g0, uint32_t chain0, int64_t count,
                        bool over_chains, uint32_t step, uint32_t stream, float* out);

// uniform_block_rows through one forced path, for the tests; false when this machine (or
// build) lacks it.
bool uniform_block_rows_path(int path, StreamKey key, uint32_t g0, int64_t groups,
                             uint32_t chain0, int64_t rows, int64_t ld, uint32_t step,
                             uint32_t stream, float* out);

}  // namespace wb
