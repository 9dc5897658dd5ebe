#include "walkback/random_ops.h"

#include <stdexcept>

#include "walkback/philox_simd.h"
#include "walkback/simd.h"
#include "walkback/thread_pool.h"

namespace wb {

void uniform_row(StreamKey key, uint32_t chain, uint32_t step, uint32_t stream,
                 int64_t first_unit, int64_t units, float* u) {
  if (first_unit % 4 != 0) throw std::invalid_argument("uniform_row: first_unit % 4 != 0");
  const uint32_t g0 = static_cast<uint32_t>(first_unit / 4);
  const int64_t full = units / 4;
  uniform_blocks(key, g0, full, chain, step, stream, u);
  if (full * 4 < units) {
    const Philox4 b = stream_block(key, g0 + static_cast<uint32_t>(full), chain, step, stream);
    for (int64_t i = full * 4; i < units; ++i) u[i] = u01(b.v[i - full * 4]);
  }
}

void uniform_row_block(StreamKey key, uint32_t chain0, int64_t rows, uint32_t step,
                       uint32_t stream, int64_t first_unit, int64_t units, float* u, int64_t ld) {
  if (first_unit % 4 != 0) throw std::invalid_argument("uniform_row_block: first_unit % 4 != 0");
  const uint32_t g0 = static_cast<uint32_t>(first_unit / 4);
  const int64_t full = units / 4;
  uniform_block_rows(key, g0, full, chain0, rows, ld, step, stream, u);
  if (full * 4 < units)
    for (int64_t r = 0; r < rows; ++r) {
      const Philox4 b = stream_block(key, g0 + static_cast<uint32_t>(full),
                                     chain0 + static_cast<uint32_t>(r), step, stream);
      for (int64_t i = full * 4; i < units; ++i) u[r * ld + i] = u01(b.v[i - full * 4]);
    }
}

namespace {

// Box-Muller over the pairs (0, 1), (2, 3) of each block of uniforms: one loop without calls,
// vectorized in each SIMD clone.
WB_SIMD_CLONES void box_muller_pairs(const float* u, float* n, int64_t pairs) {
  for (int64_t p = 0; p < pairs; ++p) box_muller(u[2 * p], u[2 * p + 1], &n[2 * p], &n[2 * p + 1]);
}

}  // namespace

void normal_row(StreamKey key, uint32_t chain, uint32_t step, uint32_t stream,
                int64_t first_unit, int64_t units, float* n) {
  if (first_unit % 4 != 0) throw std::invalid_argument("normal_row: first_unit % 4 != 0");
  const uint32_t g0 = static_cast<uint32_t>(first_unit / 4);
  const int64_t groups = (units + 3) / 4;
  constexpr int64_t kChunk = 64;  // blocks per pass: 256 floats of stack
  float u[4 * kChunk], z[4 * kChunk];
  for (int64_t g = 0; g < groups; g += kChunk) {
    const int64_t count = groups - g < kChunk ? groups - g : kChunk;
    uniform_blocks(key, g0 + static_cast<uint32_t>(g), count, chain, step, stream, u);
    const int64_t first = 4 * g, width = units - first < 4 * count ? units - first : 4 * count;
    if (width == 4 * count) {
      box_muller_pairs(u, n + first, 2 * count);
    } else {
      box_muller_pairs(u, z, 2 * count);
      for (int64_t i = 0; i < width; ++i) n[first + i] = z[i];
    }
  }
}

namespace {

// Rows of few units, block by block: for each Philox block (4 units) of the row, that block of
// up to kChains chains at once, then (normal) Box-Muller over the same pairs as normal_row.
template <bool kNormal>
void few_unit_rows(StreamKey key, uint32_t chain0, int64_t chains, uint32_t step,
                   uint32_t stream, int64_t units, float* out) {
  constexpr int64_t kChains = 64;
  float u[4 * kChains], z[4 * kChains];
  for (int64_t c0 = 0; c0 < chains; c0 += kChains) {
    const int64_t n = chains - c0 < kChains ? chains - c0 : kChains;
    for (int64_t g = 0; 4 * g < units; ++g) {
      chain_blocks(key, static_cast<uint32_t>(g), chain0 + static_cast<uint32_t>(c0), n, step,
                   stream, u);
      if (kNormal) box_muller_pairs(u, z, 2 * n);
      const float* src = kNormal ? z : u;
      const int64_t w = units - 4 * g < 4 ? units - 4 * g : 4;
      for (int64_t c = 0; c < n; ++c)
        for (int64_t l = 0; l < w; ++l) out[(c0 + c) * units + 4 * g + l] = src[4 * c + l];
    }
  }
}

template <bool kNormal>
void rows(StreamKey key, uint32_t chain0, int64_t chains, uint32_t step, uint32_t stream,
          int64_t units, float* out) {
  if (units < kFewUnits)
    return few_unit_rows<kNormal>(key, chain0, chains, step, stream, units, out);
  for (int64_t c = 0; c < chains; ++c)
    (kNormal ? normal_row : uniform_row)(key, chain0 + static_cast<uint32_t>(c), step, stream, 0,
                                         units, out + c * units);
}

template <bool kNormal>
void fill_array(uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                int64_t chains, int64_t units, float* out) {
  const StreamKey key = stream_key(seed);
  pool().parallel_for(chains, [&](int64_t b, int64_t e) {
    rows<kNormal>(key, first_chain + static_cast<uint32_t>(b), e - b, step, stream, units,
                  out + b * units);
  });
}
}  // namespace

void uniform_rows(StreamKey key, uint32_t chain0, int64_t chains, uint32_t step, uint32_t stream,
                  int64_t units, float* out) {
  rows<false>(key, chain0, chains, step, stream, units, out);
}

void normal_rows(StreamKey key, uint32_t chain0, int64_t chains, uint32_t step, uint32_t stream,
                 int64_t units, float* out) {
  rows<true>(key, chain0, chains, step, stream, units, out);
}

void uniform_array(uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                   int64_t chains, int64_t units, float* out) {
  fill_array<false>(seed, step, first_chain, stream, chains, units, out);
}

void normal_array(uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                  int64_t chains, int64_t units, float* out) {
  fill_array<true>(seed, step, first_chain, stream, chains, units, out);
}

}  // namespace wb
