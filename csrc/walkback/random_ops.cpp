#include "walkback/random_ops.h"

#include "walkback/philox_simd.h"
#include "walkback/thread_pool.h"

namespace wb {

void uniform_row(StreamKey key, uint32_t chain, uint32_t step, uint32_t stream,
                 int64_t first_unit, int64_t units, float* u) {
  const uint32_t g0 = static_cast<uint32_t>(first_unit / 4);
  const int64_t full = units / 4;
  uniform_blocks(key, g0, full, chain, step, stream, u);
  if (full * 4 < units) {
    const Philox4 b = stream_block(key, g0 + static_cast<uint32_t>(full), chain, step, stream);
    for (int64_t i = full * 4; i < units; ++i) u[i] = u01(b.v[i - full * 4]);
  }
}

void normal_row(StreamKey key, uint32_t chain, uint32_t step, uint32_t stream,
                int64_t first_unit, int64_t units, float* n) {
  const uint32_t g0 = static_cast<uint32_t>(first_unit / 4);
  const int64_t groups = (units + 3) / 4;
  for (int64_t g = 0; g < groups; ++g) {
    float v[4];
    normals_of_block(stream_block(key, g0 + static_cast<uint32_t>(g), chain, step, stream), v);
    for (int64_t l = 0; l < 4 && 4 * g + l < units; ++l) n[4 * g + l] = v[l];
  }
}

namespace {
template <class RowFn>
void fill_array(RowFn row, uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                int64_t chains, int64_t units, float* out) {
  const StreamKey key = stream_key(seed);
  pool().parallel_for(chains, [&](int64_t b, int64_t e) {
    for (int64_t c = b; c < e; ++c)
      row(key, first_chain + static_cast<uint32_t>(c), step, stream, 0, units, out + c * units);
  });
}
}  // namespace

void uniform_array(uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                   int64_t chains, int64_t units, float* out) {
  fill_array(uniform_row, seed, step, first_chain, stream, chains, units, out);
}

void normal_array(uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                  int64_t chains, int64_t units, float* out) {
  fill_array(normal_row, seed, step, first_chain, stream, chains, units, out);
}

}  // namespace wb
