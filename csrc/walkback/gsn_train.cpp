#include "walkback/gsn_train.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "walkback/gsn_layers.h"
#include "walkback/gsn_visible.h"
#include "walkback/parallel_gemm.h"
#include "walkback/thread_pool.h"
#include "walkback/workspace.h"

namespace wb {
namespace {

// Per-step storage of gsn_walkback: corrupted inputs, hidden outputs and activations, and the
// pre-activation gradients, K x B rows each.
template <class T>
struct GsnWorkspace {
  std::vector<T> xt, d_o;
  std::vector<std::vector<T>> hs, ys, ga;
  size_t bytes() const { return total_bytes(xt, d_o, hs, ys, ga); }
  void fit(int L, int64_t rows, const std::vector<int64_t>& n, bool grads) {
    xt.resize(rows * n[0]);
    d_o.resize(grads ? rows * n[0] : 0);
    hs.resize(L + 1);
    ys.resize(L + 1);
    ga.resize(L + 1);
    for (int l = 1; l <= L; ++l) {
      hs[l].resize(rows * n[l]);
      ys[l].resize(rows * n[l]);
      ga[l].resize(grads ? rows * n[l] : 0);
    }
  }
};

// sum[j] += the column sums of a (rows x n) for j in [0, n), columns split over threads and
// rows summed in order (the result does not depend on the thread count).
template <class T>
void add_column_sums(const T* a, int64_t rows, int64_t n, T* sum) {
  parallel_columns(n, 16, 64, 1, [&](int64_t j0, int64_t j1) {
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = j0; j < j1; ++j) sum[j] += a[r * n + j];
  }, false);
}

}  // namespace

template <class T>
double gsn_walkback(const GsnModel<T>& model, const WalkbackArgs& a, const T* x,
                    const uint8_t* clamp, GsnGrads<T>* grads) {
  const int64_t B = a.batch, D = model.D(), K = a.walkbacks;
  // Every weight matrix packed once per batch (both orientations) for walkback's own GEMM: the
  // k steps forward and the data gradients backward all multiply by them.
  GsnModel<T> m = model;
  KeptWorkspace<GsnPacked> packed;
  if constexpr (std::is_same_v<T, float>) {
    if (packed_gemm_pays(B, K)) pack_gsn_weights(m, *packed);
  }
  const int L = m.L;
  const StreamKey key = stream_key(a.seed);
  const T scale = T(1) / static_cast<T>(B);
  // Stored per step (step-major, K x B rows): corrupted inputs, every hidden layer's output h and
  // activation y, and the visible pre-activation gradients.
  // The buffers live on between calls of a thread (workspace.h).
  KeptWorkspace<GsnWorkspace<T>> work;
  GsnWorkspace<T>& ws = *work;
  ws.fit(L, K * B, m.n, grads != nullptr);
  std::vector<T>& xt = ws.xt;
  std::vector<T>& d_o = ws.d_o;
  std::vector<std::vector<T>>& hs = ws.hs;
  std::vector<std::vector<T>>& ys = ws.ys;
  std::vector<T> xs(x, x + B * D), o(B * D);
  auto at = [&](std::vector<std::vector<T>>& v, int l, int64_t t) { return v[l].data() + t * B * m.n[l]; };
  std::vector<double> partial(K * B, 0.0);
  auto counted = [&](int64_t t) { return !a.last_only || t + 1 == K; };
  // need(t, l): layer l at step t reaches a counted reconstruction (through the hidden layers
  // or the visible sample), so it is computed; the others are skipped (the top layers of the
  // last steps, e.g. layers 2 and 3 of the last step of a 3-layer GSN).
  std::vector<char> need_tab(K * (L + 2), 0);
  auto need = [&](int64_t t, int l) -> char& { return need_tab[t * (L + 2) + l]; };
  for (int64_t t = K - 1; t >= 0; --t) {
    need(t, 0) = counted(t) || (t + 1 < K && need(t + 1, 1));
    for (int l = 2; l <= L; l += 2)
      need(t, l) = t + 1 < K && (need(t + 1, l - 1) || (l < L && need(t + 1, l + 1)));
    for (int l = 1; l <= L; l += 2)
      need(t, l) = (l == 1 && need(t, 0)) || (l > 1 && need(t, l - 1)) || (l < L && need(t, l + 1));
  }
  // Steps [0, steps_of(l)) of layer l are computed.
  auto steps_of = [&](int l) {
    int64_t n = 0;
    for (int64_t t = 0; t < K; ++t)
      if (need(t, l)) n = t + 1;
    return n;
  };

  for (int64_t t = 0; t < K; ++t) {
    const uint32_t step = static_cast<uint32_t>(t);
    T* xt_t = xt.data() + t * B * D;
    pool().parallel_for(B, [&](int64_t r0, int64_t r1) {
      VisibleScratch<T> sc(D);
      for (int64_t r = r0; r < r1; ++r)
        gsn_corrupt_row<T>(m.segments, xs.data() + r * D, xt_t + r * D, key,
                           a.first_chain + static_cast<uint32_t>(r), step, sc);
    });
    // Odd layers read the even layers of the previous step (zero before the first step).
    for (int l = 1; l <= L; l += 2) {
      if (!need(t, l)) continue;
      const T* below = l == 1 ? xt_t : (t > 0 ? at(hs, l - 1, t - 1) : nullptr);
      const T* above = l < L && t > 0 ? at(hs, l + 1, t - 1) : nullptr;
      gsn_update_hidden<T>(m, l, B, key, step, a.first_chain, below, above, at(hs, l, t),
                           at(ys, l, t));
    }
    for (int l = 2; l <= L; l += 2)
      if (need(t, l))
        gsn_update_hidden<T>(m, l, B, key, step, a.first_chain, at(hs, l - 1, t),
                             l < L ? at(hs, l + 1, t) : nullptr, at(hs, l, t), at(ys, l, t));
    gsn_decode<T>(m, B, at(hs, 1, t), o.data());
    const bool counts = counted(t);
    const bool more = t + 1 < K;
    pool().parallel_for(B, [&](int64_t r0, int64_t r1) {
      VisibleScratch<T> sc(D);
      for (int64_t r = r0; r < r1; ++r) {
        T* orow = o.data() + r * D;
        T* drow = grads ? d_o.data() + (t * B + r) * D : nullptr;
        const double nll =
            gsn_nll_grad_row<T>(m.segments, orow, m.b[0], x + r * D, drow, counts ? scale : T(0), sc);
        if (counts) partial[t * B + r] = nll;
        if (more)
          gsn_sample_row<T>(m.segments, orow, xs.data() + r * D, clamp, key,
                            a.first_chain + static_cast<uint32_t>(r), step, sc);
      }
    });
  }
  double loss = 0.0;
  for (double p : partial) loss += p;
  loss /= static_cast<double>(B);
  if (!grads) return loss;

  // Backward through the unrolled chain. ga[l] holds d loss / d pre-activation of layer l at
  // every step (K x B rows); the visible layer's is d_o.
  std::vector<std::vector<T>>& ga = ws.ga;
  for (int l = 1; l <= L; ++l) std::fill(ga[l].begin(), ga[l].end(), T(0));
  auto ga_at = [&](int l, int64_t t) -> const T* {
    if (t < 0 || t >= K) return nullptr;
    return l == 0 ? d_o.data() + t * B * D : ga[l].data() + t * B * m.n[l];
  };
  for (int64_t t = K - 1; t >= 0; --t) {
    // Even hidden layers at step t are read by the odd layers of step t + 1.
    for (int l = 2; l <= L; l += 2)
      if (t + 1 < K && need(t, l))
        gsn_backward_hidden<T>(m, l, B, ga_at(l - 1, t + 1), l < L ? ga_at(l + 1, t + 1) : nullptr,
                               at(ys, l, t), ga[l].data() + t * B * m.n[l]);
    // Odd layers at step t are read by the even layers (and the visible layer) of step t.
    for (int l = 1; l <= L; l += 2)
      if (need(t, l))
        gsn_backward_hidden<T>(m, l, B, ga_at(l - 1, t), l < L ? ga_at(l + 1, t) : nullptr,
                               at(ys, l, t), ga[l].data() + t * B * m.n[l]);
  }

  // Weight gradients, each a GEMM over the stacked steps. W_l is used upward (layer l reads
  // h_{l-1} W_l) and, when tied, downward (layer l - 1 reads h_l W_l^T).
  for (int l = 0; l <= L; ++l) std::fill(grads->b[l], grads->b[l] + m.n[l], T(0));
  for (int l = 1; l <= L; ++l) {
    const int64_t lo = m.n[l - 1], hi = m.n[l];
    std::fill(grads->W[l], grads->W[l] + lo * hi, T(0));
    if (m.U[l]) std::fill(grads->U[l], grads->U[l] + lo * hi, T(0));
    // Upward: an odd layer reads the previous step's h_{l-1} (layer 1 the corrupted input of the
    // same step); an even layer reads h_{l-1} of the same step. Rows run over the steps where
    // layer l was computed (its gradient is zero elsewhere).
    const int64_t kl = steps_of(l);
    if (l == 1)
      gemm_tn_accumulate<T>(kl * B, lo, hi, xt.data(), D, ga[1].data(), hi, grads->W[1], hi);
    else if (l % 2 == 1)
      gemm_tn_accumulate<T>((kl > 0 ? kl - 1 : 0) * B, lo, hi, at(hs, l - 1, 0), lo,
                            ga[l].data() + B * hi, hi, grads->W[l], hi);
    else
      gemm_tn_accumulate<T>(kl * B, lo, hi, at(hs, l - 1, 0), lo, ga[l].data(), hi, grads->W[l], hi);
    // Downward: layer l - 1 reads h_l; an odd l - 1 reads the previous step's, an even one
    // (the visible layer included) the same step's.
    const int64_t kr = l - 1 == 0 ? K : steps_of(l - 1);
    const bool odd_reader = (l - 1) % 2 == 1;
    const int64_t rows = (odd_reader ? (kr > 0 ? kr - 1 : 0) : kr) * B;
    const T* g_low = odd_reader ? ga_at(l - 1, 1) : ga_at(l - 1, 0);
    if (rows > 0) {
      if (m.U[l])  // dU_l = h_l^T ga_{l-1}: (hi, lo)
        gemm_tn_accumulate<T>(rows, hi, lo, at(hs, l, 0), hi, g_low, lo, grads->U[l], lo);
      else  // dW_l += ga_{l-1}^T h_l: (lo, hi)
        gemm_tn_accumulate<T>(rows, lo, hi, g_low, lo, at(hs, l, 0), hi, grads->W[l], hi);
    }
    add_column_sums(ga[l].data(), K * B, hi, grads->b[l]);
  }
  add_column_sums(d_o.data(), K * B, D, grads->b[0]);
  return loss;
}

template double gsn_walkback<float>(const GsnModel<float>&, const WalkbackArgs&, const float*,
                                    const uint8_t*, GsnGrads<float>*);
template double gsn_walkback<double>(const GsnModel<double>&, const WalkbackArgs&, const double*,
                                     const uint8_t*, GsnGrads<double>*);

}  // namespace wb
