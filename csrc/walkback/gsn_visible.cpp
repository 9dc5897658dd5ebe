#include "walkback/gsn_visible.h"

#include "walkback/corrupt.h"
#include "walkback/dispatch.h"
#include "walkback/elementwise.h"
#include "walkback/random_ops.h"
#include "walkback/row_kernels.h"

namespace wb {
namespace {

// The stream's numbers for units [offset, offset + size) of one row: rows of the stream start at
// whole Philox blocks, so compute from the block boundary below and return a pointer into it.
const float* stream_span(bool normal, StreamKey key, uint32_t chain, uint32_t step,
                         uint32_t stream, int64_t offset, int64_t size, float* buf) {
  const int64_t a0 = offset & ~int64_t(3);
  if (normal)
    normal_row(key, chain, step, stream, a0, size + offset - a0, buf);
  else
    uniform_row(key, chain, step, stream, a0, size + offset - a0, buf);
  return buf + (offset - a0);
}

}  // namespace

template <class T>
void gsn_corrupt_row(const std::vector<VisibleSegment>& segs, const T* x, T* xt, StreamKey key,
                     uint32_t chain, uint32_t step, VisibleScratch<T>& s) {
  for (const VisibleSegment& g : segs) {
    const T* xs = x + g.offset;
    T* out = xt + g.offset;
    if (g.corruption == Corruption::None) {
      for (int64_t i = 0; i < g.size; ++i) out[i] = xs[i];
      continue;
    }
    const bool normal = corruption_needs_normal(g.corruption);
    const float* r = stream_span(normal, key, chain, step,
                                 normal ? kStreamCorruptNormal : kStreamCorrupt, g.offset, g.size,
                                 s.u.data());
    const T p = static_cast<T>(g.corruption_param);
    with_corruption(g.corruption, [&](auto k) {
      for (int64_t i = 0; i < g.size; ++i)
        out[i] = corrupt_value<T>(decltype(k)::value, p, xs[i], r[i], r[i]);
    });
  }
}

template <class T>
double gsn_nll_grad_row(const std::vector<VisibleSegment>& segs, T* o, const T* b0,
                        const T* target, T* d_o, T scale, VisibleScratch<T>& s) {
  double total = 0.0;
  for (const VisibleSegment& g : segs) {
    T* os = o + g.offset;
    const T* ts = target + g.offset;
    T* ds = d_o ? d_o + g.offset : nullptr;
    const T sc = scale * static_cast<T>(g.weight);
    double seg = 0.0;
    if (g.reconstruction == Reconstruction::Categorical) {
      for (int64_t i = 0; i < g.size; ++i) os[i] += b0[g.offset + i];
      seg = static_cast<double>(categorical_nll_grad<T>(os, ts, g.size, sc, ds));
    } else {
      with_reconstruction(g.reconstruction, [&](auto rc) {
        nll_grad_row<T, decltype(rc)::value>(os, b0 + g.offset, ts, s.nll.data(),
                                             ds ? ds : s.sink.data(), sc,
                                             static_cast<T>(g.sigma), g.size);
      });
      for (int64_t i = 0; i < g.size; ++i) seg += static_cast<double>(s.nll[i]);
    }
    total += g.weight * seg;
  }
  return total;
}

template <class T>
void gsn_sample_row(const std::vector<VisibleSegment>& segs, T* o, T* x, const uint8_t* clamp,
                    StreamKey key, uint32_t chain, uint32_t step, VisibleScratch<T>& s) {
  for (const VisibleSegment& g : segs) {
    T* os = o + g.offset;
    T* xs = x + g.offset;
    const uint8_t* cs = clamp ? clamp + g.offset : nullptr;
    if (g.reconstruction == Reconstruction::Categorical) {
      const float* u = stream_span(false, key, chain, step, kStreamSample, g.offset, 1, s.u.data());
      if (cs && cs[0]) {
        // Clamped: state and mean are the given values, as for the other reconstructions.
        for (int64_t i = 0; i < g.size; ++i) os[i] = xs[i];
      } else {
        categorical_mean_sample<T>(os, xs, g.size, u[0]);
      }
      continue;
    }
    const bool normal = g.reconstruction == Reconstruction::Gaussian;
    const float* r = stream_span(normal, key, chain, step,
                                 normal ? kStreamSampleNormal : kStreamSample, g.offset, g.size,
                                 s.u.data());
    with_reconstruction(g.reconstruction, [&](auto rc) {
      sample_row<T, decltype(rc)::value>(xs, os, s.zeros.data(), cs, static_cast<T>(g.sigma), r,
                                         g.size);
    });
  }
}

#define WB_INSTANTIATE(T)                                                                      \
  template void gsn_corrupt_row<T>(const std::vector<VisibleSegment>&, const T*, T*, StreamKey, \
                                   uint32_t, uint32_t, VisibleScratch<T>&);                        \
  template double gsn_nll_grad_row<T>(const std::vector<VisibleSegment>&, T*, const T*,         \
                                      const T*, T*, T, VisibleScratch<T>&);                                         \
  template void gsn_sample_row<T>(const std::vector<VisibleSegment>&, T*, T*, const uint8_t*,  \
                                  StreamKey, uint32_t, uint32_t, VisibleScratch<T>&);
WB_INSTANTIATE(float)
WB_INSTANTIATE(double)
#undef WB_INSTANTIATE

}  // namespace wb
