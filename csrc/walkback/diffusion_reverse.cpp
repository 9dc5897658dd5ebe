// The reverse chain of a diffusion model (see diffusion.h).
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "walkback/blas.h"
#include "walkback/diffusion.h"
#include "walkback/diffusion_step.h"
#include "walkback/elementwise.h"
#include "walkback/parallel_gemm.h"
#include "walkback/random_ops.h"
#include "walkback/simd.h"
#include "walkback/thread_pool.h"
#include "walkback/workspace.h"

namespace wb {

using detail::step_scalars;

namespace {
// One row's units [0, w) of the reverse step: the sample from the readout o (interleaved
// (zm, zs) pairs for a Gaussian unit, one logit for a binomial one) plus its bias, then the
// clamped units put back. Loops of their own, compiled per SIMD level: inside the sampling
// lambda, with its branches and captures, they stayed scalar (18% of the MNIST chain).
template <class T>
WB_SIMD_CLONES void gauss_sample_row(const DiffusionStep<T>& s, T* x, const T* o, const T* b,
                                     const T* y, T obs_var, const float* rnd, int64_t w) {
  const DiffusionStep<T> st = s;
  // Two loops, not `y ? y[d] : 0` in one: a null y read under a mask is slow (row_kernels.h).
  if (!y) {
    for (int64_t d = 0; d < w; ++d)
      x[d] = diffusion_gauss_sample(st, x[d], o[2 * d] + b[2 * d], o[2 * d + 1] + b[2 * d + 1],
                                    T(0), obs_var, rnd[d]);
    return;
  }
  for (int64_t d = 0; d < w; ++d)
    x[d] = diffusion_gauss_sample(st, x[d], o[2 * d] + b[2 * d], o[2 * d + 1] + b[2 * d + 1],
                                  y[d], obs_var, rnd[d]);
}

template <class T>
WB_SIMD_CLONES void binomial_sample_row(const DiffusionStep<T>& s, T* x, const T* o, const T* b,
                                        const float* rnd, int64_t w) {
  const DiffusionStep<T> st = s;
  for (int64_t d = 0; d < w; ++d) {
    const T p = sigmoid(diffusion_binomial_logit(st, x[d], o[d] + b[d]));
    x[d] = T(rnd[d]) < p ? T(1) : T(0);
  }
}
}  // namespace

template <class T>
void diffusion_reverse(const DiffusionNet<T>& m, const ReverseArgs<T>& a, T* x) {
  const int64_t n = a.n, D = m.D, J = m.J, K = m.K(), H = m.H(), cols = D * K;
  const StreamKey key = stream_key(a.seed);
  const bool gauss = m.kind == DiffusionKind::Gaussian;
  std::vector<std::vector<T>> act_store(m.hidden.size());
  std::vector<T*> acts;
  for (size_t l = 0; l < m.hidden.size(); ++l) {
    act_store[l].resize(n * m.hidden[l].out);
    acts.push_back(act_store[l].data());
  }
  std::vector<T> w_eff(H * cols), b_eff(cols), out(n * cols), g(J);
  // Readouts of fewer than 256 columns sample blocks of rows (below), with b_eff repeated over
  // a block in b_rows.
  const bool narrow = cols < 256;
  constexpr int64_t kRowBlock = 64;
  std::vector<T> b_rows(narrow ? kRowBlock * cols : 0);
  // The hidden layers stay fixed over all the steps: packed once for walkback's own GEMM.
  std::vector<DenseLayer<T>> hidden = m.hidden;
  KeptWorkspace<PackedStack> packed;
  if constexpr (std::is_same_v<T, float>) {
    const int64_t steps = a.t_hi - a.t_lo + 1;
    if (packed_gemm_pays(n, steps))
      pack_layers(hidden, *packed);
  }
  for (int64_t t = a.t_hi; t >= a.t_lo; --t) {
    const DiffusionStep<T> s = step_scalars(m, t);
    // The last step, p(x_0 | x_1), is the bound's: the forward step reversed at equilibrium,
    // N(sqrt(alpha_1) x_1, beta_1) (zero coefficients; training never sees t = 1).
    for (int64_t j = 0; j < J; ++j)
      g[j] = t == 1 ? T(0) : static_cast<T>(m.basis[(t - 1) * J + j]);
    // All rows share t, so the basis mixes the readout's weights once per step:
    // W_eff = sum_j g_j W_j over the basis functions with a weight above zero.
    pool().parallel_for(H, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h) {
        // Restrict-qualified locals and the weight in a local: through the captures every
        // store into dst could alias g and the loop would stay scalar.
        T* __restrict dst = w_eff.data() + h * cols;
        bool first = true;
        for (int64_t j = 0; j < J; ++j) {
          const T gj = g[j];
          if (gj == T(0)) continue;
          const T* __restrict src = m.Wout + h * J * cols + j * cols;
          if (first)
            for (int64_t q = 0; q < cols; ++q) dst[q] = gj * src[q];
          else
            for (int64_t q = 0; q < cols; ++q) dst[q] += gj * src[q];
          first = false;
        }
        if (first)
          for (int64_t q = 0; q < cols; ++q) dst[q] = T(0);
      }
    }, 16);
    for (int64_t q = 0; q < cols; ++q) b_eff[q] = T(0);
    for (int64_t j = 0; j < J; ++j)
      for (int64_t q = 0; q < cols; ++q) b_eff[q] += g[j] * m.bout[j * cols + q];
    mlp_forward<T>(hidden, Activation::LeakyRelu, n, x, acts);
    const uint32_t step = static_cast<uint32_t>(t);
    // The sample of units [d0, d1) of rows [r0, r1), from the readout's product in `out`.
    auto sample_block = [&](int64_t r0, int64_t r1, int64_t d0, int64_t d1) {
      const int64_t w = d1 - d0;
      std::vector<float> rnd(w);
      for (int64_t r = r0; r < r1; ++r) {
        const uint32_t chain = a.first_chain + static_cast<uint32_t>(r);
        if (gauss)
          normal_row(key, chain, step, kStreamSampleNormal, d0, w, rnd.data());
        else
          uniform_row(key, chain, step, kStreamSample, d0, w, rnd.data());
        T* xr = x + r * D + d0;
        if (gauss)
          gauss_sample_row<T>(s, xr, out.data() + r * cols + 2 * d0, b_eff.data() + 2 * d0,
                              a.y ? a.y + r * D + d0 : nullptr,
                              static_cast<T>(a.y ? a.obs_var : 0.0), rnd.data(), w);
        else
          binomial_sample_row<T>(s, xr, out.data() + r * cols + d0, b_eff.data() + d0,
                                 rnd.data(), w);
        if (a.clamp)
          for (int64_t d = d0; d < d1; ++d)
            if (a.clamp[r * D + d]) x[r * D + d] = a.known[r * D + d];
      }
    };
    if (!narrow) {
      // Wide readouts (images): column slices, the weights streamed once.
      gemm_columns<T>(false, n, cols, H, acts.back(), H, w_eff.data(), cols, out.data(), cols,
                      4 * K, [&](int64_t c0, int64_t c1) { sample_block(0, n, c0 / K, c1 / K); });
    } else {
      // Narrow ones (a few units): row slices, or one thread would do all the work. Their
      // rows are sampled kRowBlock rows at a time, as one run of units (x, out and the draws
      // are contiguous over rows; b_rows repeats b_eff), the draws through uniform_rows /
      // normal_rows (one Philox pass for many chains when rows are short): row by row, each
      // call of the sampling and each row's draws cost more than the work for rows of a few
      // units (a third of the swiss-roll chain).
      for (int64_t r = 0; r < kRowBlock; ++r)
        std::copy(b_eff.begin(), b_eff.end(), b_rows.begin() + r * cols);
      parallel_rows(n, 16, [&](int64_t r0, int64_t r1) {
        blas::gemm(false, false, static_cast<int>(r1 - r0), static_cast<int>(cols),
                   static_cast<int>(H), T(1), acts.back() + r0 * H, static_cast<int>(H),
                   w_eff.data(), static_cast<int>(cols), T(0), out.data() + r0 * cols,
                   static_cast<int>(cols));
        std::vector<float> rnd(kRowBlock * D);
        for (int64_t b0 = r0; b0 < r1; b0 += kRowBlock) {
          const int64_t rows = std::min(kRowBlock, r1 - b0), w = rows * D;
          const uint32_t chain = a.first_chain + static_cast<uint32_t>(b0);
          T* xb = x + b0 * D;
          if (gauss) {
            normal_rows(key, chain, rows, step, kStreamSampleNormal, D, rnd.data());
            gauss_sample_row<T>(s, xb, out.data() + b0 * cols, b_rows.data(),
                                a.y ? a.y + b0 * D : nullptr,
                                static_cast<T>(a.y ? a.obs_var : 0.0), rnd.data(), w);
          } else {
            uniform_rows(key, chain, rows, step, kStreamSample, D, rnd.data());
            binomial_sample_row<T>(s, xb, out.data() + b0 * cols, b_rows.data(), rnd.data(), w);
          }
          if (a.clamp)
            for (int64_t i = b0 * D; i < b0 * D + w; ++i)
              if (a.clamp[i]) x[i] = a.known[i];
        }
      });
    }
  }
}

template void diffusion_reverse<float>(const DiffusionNet<float>&, const ReverseArgs<float>&,
                                       float*);
template void diffusion_reverse<double>(const DiffusionNet<double>&,
                                        const ReverseArgs<double>&, double*);

}  // namespace wb
