#include "walkback/gsn_chain.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "walkback/gsn_layers.h"
#include "walkback/gsn_visible.h"
#include "walkback/thread_pool.h"
#include "walkback/workspace.h"

namespace wb {

template <class T>
void gsn_chain(const GsnModel<T>& model, const ChainArgs& a, T* x, T* const* hidden, T* records,
               T* means, T* mean_sum) {
  const int64_t B = a.chains, D = model.D();
  const StreamKey key = stream_key(a.seed);
  const int64_t total = a.burn_in + a.steps;
  // Many chains: every weight matrix packed once, in both orientations, for all the steps.
  GsnModel<T> m = model;
  KeptWorkspace<GsnPacked> packed;
  if constexpr (std::is_same_v<T, float>) {
    if (packed_chain_pays(B, total))
      pack_gsn_weights(m, *packed);
  }
  std::vector<T> xt(B * D), o(B * D);
  std::vector<std::vector<T>> y(m.L + 1);  // activation outputs: unused when sampling
  for (int l = 1; l <= m.L; ++l) y[l].resize(B * m.n[l]);
  auto h = [&](int l) { return hidden[l - 1]; };
  for (int64_t s = 0; s < total; ++s) {
    const uint32_t step = a.first_step + static_cast<uint32_t>(s);
    pool().parallel_for(B, [&](int64_t r0, int64_t r1) {
      VisibleScratch<T> sc(D);
      for (int64_t r = r0; r < r1; ++r)
        gsn_corrupt_row<T>(m.segments, x + r * D, xt.data() + r * D, key,
                           a.first_chain + static_cast<uint32_t>(r), step, sc);
    });
    for (int l = 1; l <= m.L; l += 2)
      gsn_update_hidden<T>(m, l, B, key, step, a.first_chain, l == 1 ? xt.data() : h(l - 1),
                           l < m.L ? h(l + 1) : nullptr, h(l), y[l].data());
    for (int l = 2; l <= m.L; l += 2)
      gsn_update_hidden<T>(m, l, B, key, step, a.first_chain, h(l - 1),
                           l < m.L ? h(l + 1) : nullptr, h(l), y[l].data());
    gsn_decode<T>(m, B, h(1), o.data());
    const bool last = s + 1 == total;
    const int64_t past = s + 1 - a.burn_in;
    T* rec = nullptr;
    if (a.every > 0 && past > 0 && past % a.every == 0 && records)
      rec = records + (past / a.every - 1) * B * D;
    pool().parallel_for(B, [&](int64_t r0, int64_t r1) {
      VisibleScratch<T> sc(D);
      for (int64_t r = r0; r < r1; ++r) {
        T* orow = o.data() + r * D;
        T* xr = x + r * D;
        for (int64_t i = 0; i < D; ++i) orow[i] += m.b[0][i];
        const uint8_t* cl = a.clamp ? a.clamp + (a.clamp_per_chain ? r * D : 0) : nullptr;
        gsn_sample_row<T>(m.segments, orow, xr, cl, key, a.first_chain + static_cast<uint32_t>(r),
                          step, sc);
        if (rec) {
          const T* src = a.record_means ? orow : xr;
          std::copy(src, src + D, rec + r * D);
        }
        if (mean_sum && past > 0)
          for (int64_t i = 0; i < D; ++i) mean_sum[r * D + i] += orow[i];
        if (last && means) std::copy(orow, orow + D, means + r * D);
      }
    });
  }
}

template void gsn_chain<float>(const GsnModel<float>&, const ChainArgs&, float*, float* const*,
                               float*, float*, float*);
template void gsn_chain<double>(const GsnModel<double>&, const ChainArgs&, double*,
                                double* const*, double*, double*, double*);

}  // namespace wb
