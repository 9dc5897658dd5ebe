// Rows of the random stream on the CPU: the uniforms and normals of one chain at one step.
#pragma once
#include <cstdint>
#include <vector>

#include "walkback/rng.h"

namespace wb {

// u[i] = the uniform of unit first_unit + i (i < units) of `chain` at `step` in `stream`.
// first_unit must be a multiple of 4 (a Philox block).
void uniform_row(StreamKey key, uint32_t chain, uint32_t step, uint32_t stream,
                 int64_t first_unit, int64_t units, float* u);
// uniform_row for the chains chain0 .. chain0 + rows - 1, row r into u + r * ld: the same
// numbers, drawn a block of rows at a time (uniform_block_rows).
void uniform_row_block(StreamKey key, uint32_t chain0, int64_t rows, uint32_t step,
                       uint32_t stream, int64_t first_unit, int64_t units, float* u, int64_t ld);
// How many rows a caller of uniform_row_block draws at a time: enough sets for its SIMD passes,
// few enough that the buffers stay small and in cache (an epilogue over every row of a large
// batch would otherwise keep rows x units floats per thread).
constexpr int64_t kDrawRows = 16;

// A block of rows' uniforms of one stream (uniform_row_block) in a buffer that only grows:
// what the chain's and training's epilogues sample and corrupt a block with, one per thread.
class BlockUniforms {
 public:
  void draw(StreamKey key, uint32_t chain0, int64_t rows, uint32_t step, uint32_t stream,
            int64_t first_unit, int64_t units) {
    if (u_.size() < static_cast<size_t>(rows * units)) u_.resize(rows * units);
    units_ = units;
    uniform_row_block(key, chain0, rows, step, stream, first_unit, units, u_.data(), units);
  }
  // Row r of the block (counted from its first row).
  const float* row(int64_t r) const { return u_.data() + r * units_; }

 private:
  std::vector<float> u_;
  int64_t units_ = 0;
};
// n[i] = the standard normal of unit first_unit + i (Box-Muller over lanes (0, 1), (2, 3)).
void normal_row(StreamKey key, uint32_t chain, uint32_t step, uint32_t stream,
                int64_t first_unit, int64_t units, float* n);

// The rows of `chains` chains from chain0, units 0 .. units - 1 of each: out (chains x units)
// holds what uniform_row / normal_row give each chain, bit for bit. Rows of a few units
// (fewer than kFewUnits) are drawn one Philox block of many chains at a time.
constexpr int64_t kFewUnits = 32;
void uniform_rows(StreamKey key, uint32_t chain0, int64_t chains, uint32_t step, uint32_t stream,
                  int64_t units, float* out);
void normal_rows(StreamKey key, uint32_t chain0, int64_t chains, uint32_t step, uint32_t stream,
                 int64_t units, float* out);

// Whole arrays (chains x units), rows in parallel: chain c of the array is chain first_chain + c.
void uniform_array(uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                   int64_t chains, int64_t units, float* out);
void normal_array(uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                  int64_t chains, int64_t units, float* out);

}  // namespace wb
