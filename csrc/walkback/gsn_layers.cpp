#include "walkback/gsn_layers.h"

#include <vector>

#include "walkback/dispatch.h"
#include "walkback/elementwise.h"
#include "walkback/parallel_gemm.h"
#include "walkback/random_ops.h"
#include "walkback/row_kernels.h"
#include "walkback/simd.h"

namespace wb {
namespace {

constexpr int64_t kAlign = 16;  // column slices are whole Philox blocks and SIMD-aligned

template <class T, Activation A>
WB_SIMD_CLONES void hidden_row(T* h, T* y, const T* b, T s_pre, const float* n_pre, T s_post,
                               const float* n_post, int64_t n) {
  for (int64_t j = 0; j < n; ++j) h[j] = gsn_hidden_unit<T>(A, h[j] + b[j], s_pre, n_pre[j], s_post, n_post[j], y[j]);
}

// The downward term h_{l} D_l feeding layer l - 1: tied D_l = W_l^T, untied U_l.
template <class T>
GemmTerm<T> down_term(const GsnModel<T>& m, int l, const T* h) {
  GemmTerm<T> t;
  t.a = h;
  t.lda = t.k = m.n[l];
  if (m.U[l]) {
    t.b = m.U[l];
    t.ldb = m.n[l - 1];
  } else {
    t.b = m.W[l];
    t.ldb = m.n[l];
    t.trans_b = true;
  }
  if (!m.down.empty()) t.packed = m.down[l];
  return t;
}

}  // namespace

void pack_gsn_weights(GsnModel<float>& m, GsnPacked& store) {
  store.up.resize(m.L + 1);
  store.down.resize(m.L + 1);
  m.up.assign(m.L + 1, nullptr);
  m.down.assign(m.L + 1, nullptr);
  for (int l = 1; l <= m.L; ++l) {
    store.up[l].pack(m.W[l], m.n[l], false, m.n[l - 1], m.n[l]);
    if (m.U[l])
      store.down[l].pack(m.U[l], m.n[l - 1], false, m.n[l], m.n[l - 1]);
    else
      store.down[l].pack(m.W[l], m.n[l], true, m.n[l], m.n[l - 1]);
    m.up[l] = &store.up[l];
    m.down[l] = &store.down[l];
  }
}

template <class T>
void gsn_update_hidden(const GsnModel<T>& m, int l, int64_t B, StreamKey key, uint32_t step,
                       uint32_t first_chain, const T* below, const T* above, T* h, T* y) {
  const int64_t n = m.n[l];
  GemmTerm<T> terms[2];
  terms[0].a = below;
  terms[0].lda = terms[0].k = m.n[l - 1];
  terms[0].b = m.W[l];
  terms[0].ldb = n;
  if (!m.up.empty()) terms[0].packed = m.up[l];
  if (l < m.L) terms[1] = down_term(m, l + 1, above);
  const bool noisy = m.noisy(l);
  const T s_pre = noisy ? m.noise_pre : T(0), s_post = noisy ? m.noise_post : T(0);
  with_activation(m.activation, [&](auto act) {
    constexpr Activation A = decltype(act)::value;
    gemm_sum_columns<T>(B, n, terms, 2, h, n, kAlign, [&](int64_t j0, int64_t j1) {
      const int64_t w = j1 - j0;
      std::vector<float> pre(w, 0.0f), post(w, 0.0f);
      for (int64_t r = 0; r < B; ++r) {
        const uint32_t chain = first_chain + static_cast<uint32_t>(r);
        if (s_pre > T(0)) normal_row(key, chain, step, hidden_stream_pre(l), j0, w, pre.data());
        if (s_post > T(0)) normal_row(key, chain, step, hidden_stream_post(l), j0, w, post.data());
        hidden_row<T, A>(h + r * n + j0, y + r * n + j0, m.b[l] + j0, s_pre, pre.data(), s_post,
                         post.data(), w);
      }
    });
  });
}

template <class T>
void gsn_decode(const GsnModel<T>& m, int64_t B, const T* h1, T* o) {
  const GemmTerm<T> t = down_term(m, 1, h1);
  gemm_sum_columns<T>(B, m.n[0], &t, 1, o, m.n[0], kAlign, [](int64_t, int64_t) {});
}

template <class T>
void gsn_backward_hidden(const GsnModel<T>& m, int l, int64_t B, const T* ga_below,
                         const T* ga_above, const T* y, T* ga) {
  const int64_t n = m.n[l];
  GemmTerm<T> terms[2];
  // Layer l - 1 reads h_l through D_l: its gradient ga_below (B, n[l-1]) times D_l^T, which is
  // W_l (tied) or U_l^T (untied).
  terms[0].a = ga_below;
  terms[0].lda = terms[0].k = m.n[l - 1];
  if (m.U[l]) {
    terms[0].b = m.U[l];
    terms[0].ldb = m.n[l - 1];
    terms[0].trans_b = true;
  } else {
    terms[0].b = m.W[l];
    terms[0].ldb = n;
    if (!m.up.empty()) terms[0].packed = m.up[l];  // W_l as the forward pass packed it
  }
  // Layer l + 1 reads h_l through W_{l+1}: ga_above (B, n[l+1]) times W_{l+1}^T.
  if (l < m.L && ga_above) {
    terms[1].a = ga_above;
    terms[1].lda = terms[1].k = m.n[l + 1];
    terms[1].b = m.W[l + 1];
    terms[1].ldb = m.n[l + 1];
    terms[1].trans_b = true;
    // Tied, W_{l+1}^T is D_{l+1}, packed for the forward pass; untied, it is packed nowhere.
    if (!m.down.empty() && !m.U[l + 1]) terms[1].packed = m.down[l + 1];
  }
  with_activation(m.activation, [&](auto act) {
    constexpr Activation A = decltype(act)::value;
    gemm_sum_columns<T>(B, n, terms, 2, ga, n, kAlign, [&](int64_t j0, int64_t j1) {
      for (int64_t r = 0; r < B; ++r)
        mul_activation_grad<T, A>(ga + r * n + j0, y + r * n + j0, j1 - j0);
    });
  });
}

#define WB_INSTANTIATE(T)                                                                       \
  template void gsn_update_hidden<T>(const GsnModel<T>&, int, int64_t, StreamKey, uint32_t,      \
                                     uint32_t, const T*, const T*, T*, T*);                      \
  template void gsn_decode<T>(const GsnModel<T>&, int64_t, const T*, T*);                        \
  template void gsn_backward_hidden<T>(const GsnModel<T>&, int, int64_t, const T*, const T*,     \
                                       const T*, T*);
WB_INSTANTIATE(float)
WB_INSTANTIATE(double)
#undef WB_INSTANTIATE

}  // namespace wb
