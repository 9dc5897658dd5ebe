#include "walkback/diffusion.h"

#include <cmath>
#include <cstring>

#include "walkback/blas.h"
#include "walkback/elementwise.h"
#include "walkback/parallel_gemm.h"
#include "walkback/random_ops.h"
#include "walkback/thread_pool.h"

namespace wb {
namespace {

constexpr double kHalfLog2PiE = 1.4189385332046727418;  // 0.5 (1 + log 2 pi)

// The scalars of step t (1-based) in the model's type; the posterior's only for t >= 2.
template <class T>
DiffusionStep<T> step_scalars(const DiffusionNet<T>& m, int64_t t) {
  const double beta = m.beta[t - 1], alpha = 1.0 - beta;
  const double ab_prev = t > 1 ? m.alphabar[t - 2] : 1.0;
  DiffusionStep<T> s{};
  s.sqrt_alpha = static_cast<T>(std::sqrt(alpha));
  s.sqrt_beta = static_cast<T>(std::sqrt(beta));
  s.logit_beta = static_cast<T>(std::log(beta) - std::log1p(-beta));
  s.inv_sqrt_T = static_cast<T>(1.0 / std::sqrt(static_cast<double>(m.steps)));
  s.half_beta = static_cast<T>(0.5 * beta);
  s.ab_prev = static_cast<T>(ab_prev);
  if (t > 1) {
    // q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, 1 / lambda): the product of
    // q(x_{t-1} | x_0) = N(sqrt(ab_prev) x_0, c1) and the step's likelihood in x_{t-1}.
    const double c1 = 1.0 - ab_prev, c2 = beta / alpha, lambda = 1.0 / c1 + 1.0 / c2;
    s.c0 = static_cast<T>(std::sqrt(ab_prev) / c1 / lambda);
    s.ct = static_cast<T>(1.0 / (std::sqrt(alpha) * c2) / lambda);
    s.var_q = static_cast<T>(1.0 / lambda);
    s.log_var_q = static_cast<T>(-std::log(lambda));
  }
  return s;
}

double binary_entropy(double p) {
  double h = 0;
  if (p > 0) h -= p * std::log(p);
  if (p < 1) h -= (1 - p) * std::log1p(-p);
  return h;
}

}  // namespace

template <class T>
double diffusion_bound_constant(const DiffusionNet<T>& m) {
  const double D = static_cast<double>(m.D), beta1 = m.beta[0];
  const double abT = m.alphabar[m.steps - 1];
  if (m.kind == DiffusionKind::Gaussian)
    return D * (kHalfLog2PiE + 0.5 * std::log(beta1) - 0.5 * std::log1p(-abT));
  return D * (binary_entropy(0.5 * beta1) - binary_entropy(0.5 * (1 - abT)) + std::log(2.0));
}

template <class T>
double diffusion_bound(const DiffusionNet<T>& m, const BoundArgs& a, const T* x0,
                       double* row_loss, DiffusionGrads<T>* grads) {
  const int64_t B = a.batch, D = m.D, J = m.J, K = m.K(), H = m.H(), KJ = K * J;
  const int64_t cols = D * KJ, blocks = (D + 15) / 16;
  const StreamKey key = stream_key(a.seed);
  const bool gauss = m.kind == DiffusionKind::Gaussian;
  std::vector<int32_t> t(B);
  std::vector<T> xd(gauss ? B * D : 0), xt(B * D);
  // 1. Per row: its time step, the dequantized x_0 and a draw of x_t ~ q(x_t | x_0).
  pool().parallel_for(B, [&](int64_t r0, int64_t r1) {
    std::vector<float> u(D), n(D);
    for (int64_t r = r0; r < r1; ++r) {
      const uint32_t chain = a.first_chain + static_cast<uint32_t>(r);
      if (a.t) {
        t[r] = a.t[r];
      } else {
        float ut;
        uniform_row(key, chain, 0, kStreamInit, 0, 1, &ut);
        const int64_t k = static_cast<int64_t>(ut * static_cast<float>(m.steps - 1));
        t[r] = static_cast<int32_t>(2 + (k < m.steps - 2 ? k : m.steps - 2));
      }
      const double ab = m.alphabar[t[r] - 1];
      const T* xr = x0 + r * D;
      T* out = xt.data() + r * D;
      if (gauss) {
        const T sa = static_cast<T>(std::sqrt(ab)), sn = static_cast<T>(std::sqrt(1 - ab));
        const T w = static_cast<T>(m.dequantize);
        uniform_row(key, chain, 0, kStreamCorrupt, 0, D, u.data());
        normal_row(key, chain, 0, kStreamSampleNormal, 0, D, n.data());
        T* dr = xd.data() + r * D;
        for (int64_t d = 0; d < D; ++d) {
          dr[d] = xr[d] + (T(u[d]) - T(0.5)) * w;
          out[d] = sa * dr[d] + sn * T(n[d]);
        }
      } else {
        const T keep = static_cast<T>(ab), base = static_cast<T>(0.5 * (1 - ab));
        uniform_row(key, chain, 0, kStreamSample, 0, D, u.data());
        for (int64_t d = 0; d < D; ++d) out[d] = T(u[d]) < keep * xr[d] + base ? T(1) : T(0);
      }
    }
  });
  const T* x0d = gauss ? xd.data() : x0;

  // 2. The network on x_t.
  std::vector<std::vector<T>> act_store(m.hidden.size());
  std::vector<T*> acts;
  for (size_t l = 0; l < m.hidden.size(); ++l) {
    act_store[l].resize(B * m.hidden[l].out);
    acts.push_back(act_store[l].data());
  }
  mlp_forward<T>(m.hidden, Activation::LeakyRelu, B, xt.data(), acts);

  // 3. The readout's product, then per row and unit: mix the coefficients at t, the KL and its
  // derivatives, written over the coefficients (dZ) for the backward pass.
  std::vector<T> z(B * cols);
  std::vector<double> partial(B * blocks, 0.0);
  const T scale = static_cast<T>(static_cast<double>(m.steps - 1) / static_cast<double>(B));
  gemm_columns<T>(false, B, cols, H, acts.back(), H, m.Wout, cols, z.data(), cols, 16 * KJ,
                  [&](int64_t c0, int64_t c1) {
    const int64_t d0 = c0 / KJ, d1 = c1 / KJ;
    std::vector<T> g(J);
    for (int64_t r = 0; r < B; ++r) {
      const DiffusionStep<T> s = step_scalars(m, t[r]);
      const double* gb = m.basis + (t[r] - 1) * J;
      for (int64_t j = 0; j < J; ++j) g[j] = static_cast<T>(gb[j]);
      T* zr = z.data() + r * cols;
      double* part = partial.data() + r * blocks;
      for (int64_t d = d0; d < d1; ++d) {
        T* zd = zr + d * KJ;
        const T* bd = m.bout + d * KJ;
        T c[2] = {T(0), T(0)}, dc[2];
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < J; ++j) c[k] += g[j] * (zd[k * J + j] + bd[k * J + j]);
        const T x_0 = x0d[r * D + d], x_t = xt[r * D + d];
        const T kl = gauss ? diffusion_gauss_kl(s, x_0, x_t, c[0], c[1], dc[0], dc[1])
                           : diffusion_binomial_kl(s, x_0, x_t, c[0], dc[0]);
        part[d / 16] += static_cast<double>(kl);
        for (int64_t k = 0; k < K; ++k)
          for (int64_t j = 0; j < J; ++j) zd[k * J + j] = scale * g[j] * dc[k];
      }
    }
  });
  const double constant = diffusion_bound_constant(m);
  double total = 0;
  for (int64_t r = 0; r < B; ++r) {
    double kl = 0;
    for (int64_t b = 0; b < blocks; ++b) kl += partial[r * blocks + b];
    const double loss = static_cast<double>(m.steps - 1) * kl + constant;
    if (row_loss) row_loss[r] = loss;
    total += loss;
  }
  if (!grads) return total / static_cast<double>(B);

  // 4. Backward: the readout's weights, then the stack.
  std::memset(grads->Wout, 0, sizeof(T) * H * cols);
  gemm_tn_accumulate<T>(B, H, cols, acts.back(), H, z.data(), cols, grads->Wout, cols);
  column_sums<T>(z.data(), B, cols, cols, grads->bout);
  std::vector<T> d_top(B * H);
  gemm_columns<T>(true, B, H, cols, z.data(), cols, m.Wout, cols, d_top.data(), H, 16,
                  [](int64_t, int64_t) {});
  mlp_backward<T>(m.hidden, Activation::LeakyRelu, B, xt.data(), acts, d_top.data(), grads->W,
                  grads->b, nullptr);
  return total / static_cast<double>(B);
}

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
  for (int64_t t = a.t_hi; t >= a.t_lo; --t) {
    const DiffusionStep<T> s = step_scalars(m, t);
    for (int64_t j = 0; j < J; ++j) g[j] = static_cast<T>(m.basis[(t - 1) * J + j]);
    // All rows share t, so the basis mixes the readout's weights once per step:
    // W_eff = Wout (H * cols x J) g, rows of W split over the pool.
    pool().parallel_for(H, [&](int64_t h0, int64_t h1) {
      blas::gemv(false, static_cast<int>((h1 - h0) * cols), static_cast<int>(J), T(1),
                 m.Wout + h0 * cols * J, static_cast<int>(J), g.data(), T(0),
                 w_eff.data() + h0 * cols);
    }, 16);
    blas::gemv(false, static_cast<int>(cols), static_cast<int>(J), T(1), m.bout,
               static_cast<int>(J), g.data(), T(0), b_eff.data());
    mlp_forward<T>(m.hidden, Activation::LeakyRelu, n, x, acts);
    const uint32_t step = static_cast<uint32_t>(t);
    gemm_columns<T>(false, n, cols, H, acts.back(), H, w_eff.data(), cols, out.data(), cols,
                    4 * K, [&](int64_t c0, int64_t c1) {
      const int64_t d0 = c0 / K, d1 = c1 / K, w = d1 - d0;
      std::vector<float> rnd(w);
      for (int64_t r = 0; r < n; ++r) {
        const uint32_t chain = a.first_chain + static_cast<uint32_t>(r);
        if (gauss)
          normal_row(key, chain, step, kStreamSampleNormal, d0, w, rnd.data());
        else
          uniform_row(key, chain, step, kStreamSample, d0, w, rnd.data());
        const T* o = out.data() + r * cols;
        T* xr = x + r * D;
        for (int64_t d = d0; d < d1; ++d) {
          T v;
          if (gauss) {
            const T y = a.y ? a.y[r * D + d] : T(0);
            v = diffusion_gauss_sample(s, xr[d], o[2 * d] + b_eff[2 * d],
                                       o[2 * d + 1] + b_eff[2 * d + 1], y,
                                       static_cast<T>(a.y ? a.obs_var : 0.0), rnd[d - d0]);
          } else {
            const T p = sigmoid(diffusion_binomial_logit(s, xr[d], o[d] + b_eff[d]));
            v = T(rnd[d - d0]) < p ? T(1) : T(0);
          }
          xr[d] = a.clamp && a.clamp[r * D + d] ? a.known[r * D + d] : v;
        }
      }
    });
  }
}

#define WB_INSTANTIATE(T)                                                                     \
  template double diffusion_bound<T>(const DiffusionNet<T>&, const BoundArgs&, const T*,      \
                                     double*, DiffusionGrads<T>*);                            \
  template double diffusion_bound_constant<T>(const DiffusionNet<T>&);                        \
  template void diffusion_reverse<T>(const DiffusionNet<T>&, const ReverseArgs<T>&, T*);
WB_INSTANTIATE(float)
WB_INSTANTIATE(double)
#undef WB_INSTANTIATE

}  // namespace wb
