#include "walkback/corrupt.h"

#include <vector>

#include "walkback/dispatch.h"
#include "walkback/elementwise.h"
#include "walkback/random_ops.h"
#include "walkback/simd.h"
#include "walkback/thread_pool.h"

namespace wb {
namespace {

template <class T, Corruption K>
WB_SIMD_CLONES void corrupt_loop(T param, const T* x, T* out, int64_t n, const float* r) {
  for (int64_t i = 0; i < n; ++i) out[i] = corrupt_value<T>(K, param, x[i], r[i], r[i]);
}

}  // namespace

template <class T>
void corrupt_row(Corruption kind, T param, const T* x, T* out, int64_t first_unit,
                 int64_t units, StreamKey key, uint32_t chain, uint32_t step, float* scratch) {
  if (kind == Corruption::None) {
    if (out != x)
      for (int64_t i = 0; i < units; ++i) out[i] = x[i];
    return;
  }
  if (corruption_needs_normal(kind))
    normal_row(key, chain, step, kStreamCorrupt, first_unit, units, scratch);
  else
    uniform_row(key, chain, step, kStreamCorrupt, first_unit, units, scratch);
  corrupt_drawn<T>(kind, param, x, out, units, scratch);
}

template <class T>
void corrupt_drawn(Corruption kind, T param, const T* x, T* out, int64_t units,
                   const float* drawn) {
  if (kind == Corruption::None) {
    if (out != x)
      for (int64_t i = 0; i < units; ++i) out[i] = x[i];
    return;
  }
  with_corruption(kind, [&](auto k) { corrupt_loop<T, decltype(k)::value>(param, x, out, units, drawn); });
}

template <class T>
void corrupt_batch(Corruption kind, T param, const T* x, T* out, int64_t chains, int64_t units,
                   uint64_t seed, uint32_t step, uint32_t first_chain) {
  const StreamKey key = stream_key(seed);
  pool().parallel_for(chains, [&](int64_t b, int64_t e) {
    std::vector<float> scratch(units);
    for (int64_t c = b; c < e; ++c)
      corrupt_row<T>(kind, param, x + c * units, out + c * units, 0, units, key,
                     first_chain + static_cast<uint32_t>(c), step, scratch.data());
  });
}

template void corrupt_row<float>(Corruption, float, const float*, float*, int64_t, int64_t,
                                 StreamKey, uint32_t, uint32_t, float*);
template void corrupt_row<double>(Corruption, double, const double*, double*, int64_t, int64_t,
                                  StreamKey, uint32_t, uint32_t, float*);
template void corrupt_drawn<float>(Corruption, float, const float*, float*, int64_t,
                                   const float*);
template void corrupt_drawn<double>(Corruption, double, const double*, double*, int64_t,
                                    const float*);
template void corrupt_batch<float>(Corruption, float, const float*, float*, int64_t, int64_t,
                                   uint64_t, uint32_t, uint32_t);
template void corrupt_batch<double>(Corruption, double, const double*, double*, int64_t, int64_t,
                                    uint64_t, uint32_t, uint32_t);

}  // namespace wb
