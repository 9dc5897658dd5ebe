// The diffusion bound's Monte Carlo estimate and its gradients (see diffusion.h).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>
#include <type_traits>

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
namespace {

using detail::step_scalars;

constexpr double kHalfLog2PiE = 1.4189385332046727418;  // 0.5 (1 + log 2 pi)
// Rows per product of a narrow readout: a block of rows sorted by t uses fewer basis
// functions than a thread's whole slice (heartbeat, 512 rows: about 5.5 of 10 against 8).
constexpr int64_t kNarrowBlock = 64;

double binary_entropy(double p) {
  double h = 0;
  if (p > 0) h -= p * std::log(p);
  if (p < 1) h -= (1 - p) * std::log1p(-p);
  return h;
}

// One row's units [0, w) with a fixed schedule: kl[d] = the unit's KL, and its readout
// coefficients c (K per unit) replaced by scale * d KL / d c. Compiled per SIMD level: in the
// readout lambda, with the schedule branch and a double accumulator, the loop stayed scalar.
template <class T>
WB_SIMD_CLONES void gauss_kl_row(const DiffusionStep<T>& s, const T* x0, const T* xt, T* c,
                                 T* kl, T scale, int64_t w) {
  const DiffusionStep<T> st = s;
  for (int64_t d = 0; d < w; ++d) {
    T d_zm, d_zs;
    kl[d] = diffusion_gauss_kl(st, x0[d], xt[d], c[2 * d], c[2 * d + 1], d_zm, d_zs);
    c[2 * d] = scale * d_zm;
    c[2 * d + 1] = scale * d_zs;
  }
}

template <class T>
WB_SIMD_CLONES void binomial_kl_row(const DiffusionStep<T>& s, const T* x0, const T* xt, T* c,
                                    T* kl, T scale, int64_t w) {
  const DiffusionStep<T> st = s;
  for (int64_t d = 0; d < w; ++d) {
    T d_z;
    kl[d] = diffusion_binomial_kl(st, x0[d], xt[d], c[d], d_z);
    c[d] = scale * d_z;
  }
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

// The buffers of one bound call, kept per thread between calls (workspace.h): a batch's
// buffers are megabytes, and training asks for the same shapes batch after batch.
template <class T>
struct BoundWorkspace {
  std::vector<T> xd, xt, scaled, mixed, c, d_top, x0_sorted, g_x, d_x;
  std::vector<float> eps;
  std::vector<double> partial, part_beta, part_A;
  std::vector<std::vector<T>> acts;
  size_t bytes() const {
    return total_bytes(xd, xt, scaled, mixed, c, d_top, x0_sorted, g_x, d_x, eps, partial,
                       part_beta, part_A, acts);
  }
};

// The weights one bound call packs for walkback's own GEMM, kept per thread between calls: the
// hidden layers, and a narrow readout's W (H x cols) and W^T.
struct BoundPacks {
  PackedStack hidden;
  PackedWeights w, wt;
  size_t bytes() const { return hidden.bytes() + w.bytes() + wt.bytes(); }
};

template <class T>
double diffusion_bound(const DiffusionNet<T>& m, const BoundArgs& a, const T* x0,
                       double* row_loss, DiffusionGrads<T>* grads) {
  const int64_t B = a.batch, D = m.D, J = m.J, K = m.K(), H = m.H(), DK = D * K, cols = J * DK;
  const int64_t blocks = (D + 15) / 16;
  const StreamKey key = stream_key(a.seed);
  const bool gauss = m.kind == DiffusionKind::Gaussian;
  // A reference, not a thread_local, goes into the lambdas: inside a pool worker the
  // thread_local would be that worker's own (empty) workspace.
  KeptWorkspace<BoundWorkspace<T>> work;
  BoundWorkspace<T>& ws = *work;

  // 1. Each row's time step, then the rows ordered by t: the rows that use basis function j
  // (weight above zero) are then one contiguous range, so the readout's products take
  // contiguous rows (and a block of rows a contiguous range of functions).
  std::vector<int32_t> t_of(B);
  for (int64_t r = 0; r < B; ++r) {
    if (a.t) {
      t_of[r] = a.t[r];
    } else {
      // t = 2 + floor(bits (T - 1) / 2^32) from the 32 bits of unit 0 of the init stream:
      // exact for any T (a float32 uniform has only 2^23 values).
      const uint64_t bits =
          stream_block(key, 0, a.first_chain + static_cast<uint32_t>(r), 0, kStreamInit).v[0];
      t_of[r] = static_cast<int32_t>(2 + ((bits * static_cast<uint64_t>(m.steps - 1)) >> 32));
    }
  }
  std::vector<int64_t> order(B);
  std::iota(order.begin(), order.end(), int64_t(0));
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t p, int64_t q) { return t_of[p] < t_of[q]; });
  std::vector<int32_t> t(B);
  for (int64_t i = 0; i < B; ++i) t[i] = t_of[order[i]];

  // 2. In that order: the dequantized x_0 and a draw of x_t ~ q(x_t | x_0), keyed by the
  // row's own index, so the draws do not depend on the order.
  const bool sched = gauss && grads && a.g_beta;
  ws.xd.resize(gauss ? B * D : 0);
  ws.xt.resize(B * D);
  std::vector<float>& eps_store = ws.eps;
  eps_store.resize(sched ? B * D : 0);
  pool().parallel_for(B, [&](int64_t i0, int64_t i1) {
    std::vector<float> u(D), n(D);
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r = order[i];
      const uint32_t chain = a.first_chain + static_cast<uint32_t>(r);
      const double ab = m.alphabar[t[i] - 1];
      const T* xr = x0 + r * D;
      T* out = ws.xt.data() + i * D;
      if (gauss) {
        const T sa = static_cast<T>(std::sqrt(ab)), sn = static_cast<T>(std::sqrt(1 - ab));
        const T w = static_cast<T>(m.dequantize);
        uniform_row(key, chain, 0, kStreamCorrupt, 0, D, u.data());
        normal_row(key, chain, 0, kStreamSampleNormal, 0, D, n.data());
        if (sched) std::copy(n.begin(), n.end(), eps_store.begin() + i * D);
        T* dr = ws.xd.data() + i * D;
        for (int64_t d = 0; d < D; ++d) {
          dr[d] = xr[d] + (T(u[d]) - T(0.5)) * w;
          out[d] = diffusion_gauss_forward(dr[d], sa, sn, n[d]);
        }
      } else {
        const T keep = static_cast<T>(ab);
        uniform_row(key, chain, 0, kStreamSample, 0, D, u.data());
        for (int64_t d = 0; d < D; ++d) out[d] = diffusion_binomial_forward(xr[d], keep, u[d]);
      }
    }
  });
  // x_0 in row order i (binary data need no dequantization: gather them).
  std::vector<T>& x0_sorted = ws.x0_sorted;
  if (!gauss) {
    x0_sorted.resize(B * D);
    for (int64_t i = 0; i < B; ++i)
      std::copy(x0 + order[i] * D, x0 + order[i] * D + D, x0_sorted.data() + i * D);
  }
  const T* x0i = gauss ? ws.xd.data() : x0_sorted.data();

  // 3. The network on x_t.
  ws.acts.resize(m.hidden.size());
  std::vector<T*> acts;
  for (size_t l = 0; l < m.hidden.size(); ++l) {
    ws.acts[l].resize(B * m.hidden[l].out);
    acts.push_back(ws.acts[l].data());
  }
  // The hidden layers packed once for walkback's own GEMM (float): W for this pass, and with
  // gradients W^T for the backward one, so neither product packs anything per call.
  std::vector<DenseLayer<T>> hidden = m.hidden;
  KeptWorkspace<BoundPacks> packed;
  if constexpr (std::is_same_v<T, float>) {
    if (packed_gemm_pays(B, 2)) pack_layers(hidden, packed->hidden, grads != nullptr);
  }
  mlp_forward<T>(hidden, Activation::LeakyRelu, B, ws.xt.data(), acts);
  const T* top = acts.back();

  // 4. The readout mixed over the basis: c_i = sum_j g_j(t_i) (h_i W_j + b_j). Per j: the
  // range of rows [lo_j, hi_j) that use it.
  std::vector<int64_t> lo(J, 0), hi(J, 0), off(J + 1, 0);
  for (int64_t j = 0; j < J; ++j) {
    int64_t i = 0;
    while (i < B && m.basis[(t[i] - 1) * J + j] == 0.0) ++i;
    int64_t e = i;
    while (e < B && m.basis[(t[e] - 1) * J + j] != 0.0) ++e;
    lo[j] = i;
    hi[j] = e;
    off[j + 1] = off[j] + (e - i);
  }
  // Wide readouts (images) take one product per basis function over the rows that use it, on
  // those rows' h scaled by g_j. Narrow ones (a few units: DK < 256) take instead, per block of
  // rows, one product of h by the W_j of every j the block uses, side by side (P = h W_j,
  // unscaled), then mix c_i = sum_j g_j(t_i) (P_ij + b_j): per-j products would be DK columns
  // wide, a shape the BLAS runs at a fraction of its speed.
  const bool narrow = DK < 256;
  if (!narrow) {
    ws.scaled.resize(off[J] * H);
    pool().parallel_for(J, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j)
        for (int64_t i = lo[j]; i < hi[j]; ++i) {
          const T g = static_cast<T>(m.basis[(t[i] - 1) * J + j]);
          T* dst = ws.scaled.data() + (off[j] + i - lo[j]) * H;
          const T* src = top + i * H;
          for (int64_t h = 0; h < H; ++h) dst[h] = g * src[h];
        }
    });
  }
  // The basis functions rows [i0, i1) use: [ja, jb) (rows sorted by t use contiguous ranges).
  auto used = [&](int64_t i0, int64_t i1) {
    int64_t ja = J, jb = 0;
    for (int64_t j = 0; j < J; ++j)
      if (lo[j] < hi[j] && lo[j] < i1 && hi[j] > i0) {
        ja = std::min(ja, j);
        jb = j + 1;
      }
    return std::pair<int64_t, int64_t>(ja, jb);
  };
  ws.mixed.resize(narrow ? B * cols : 0);
  // The narrow readout's products by walkback's kernel (float): nothing packed per block of
  // rows, and the same bits for any cut of the rows. The same rule as the hidden layers (and
  // the chains: README), so that batches split into parts of 8 rows or more agree bitwise.
  bool packed_readout = false;
  if constexpr (std::is_same_v<T, float>) {
    if (narrow && packed_gemm_pays(B, 2)) {
      packed->w.pack(m.Wout, cols, false, H, cols);
      if (grads) packed->wt.pack(m.Wout, cols, true, cols, H);
      packed_readout = true;
    }
  }
  ws.c.resize(B * DK);
  std::vector<double>&partial = ws.partial, &part_beta = ws.part_beta, &part_A = ws.part_A;
  partial.assign(B * blocks, 0.0);
  part_beta.assign(sched ? B * blocks : 0, 0.0);
  part_A.assign(sched ? B * blocks : 0, 0.0);
  std::vector<T>& g_x = ws.g_x;
  g_x.resize(sched ? B * D : 0);  // every entry written by the readout blocks
  const T scale = static_cast<T>(static_cast<double>(m.steps - 1) / static_cast<double>(B));
  // Rows [i0, i1), columns [c0, c1) (whole blocks of 16 units): the readout's products, then
  // per unit the KL and d loss / d c, written over c.
  auto readout_block = [&](int64_t i0, int64_t i1, int64_t c0, int64_t c1) {
    const int64_t w = c1 - c0, d0 = c0 / K, d1 = c1 / K;
    T* c = ws.c.data();
    std::vector<T> kl_row;
    for (int64_t i = i0; i < i1; ++i)
      for (int64_t q = c0; q < c1; ++q) c[i * DK + q] = T(0);
    if (!narrow) {
      for (int64_t j = 0; j < J; ++j) {
        const int64_t r0 = std::max(lo[j], i0), r1 = std::min(hi[j], i1);
        if (r1 > r0)
          blas::gemm(false, false, static_cast<int>(r1 - r0), static_cast<int>(w),
                     static_cast<int>(H), T(1), ws.scaled.data() + (off[j] + r0 - lo[j]) * H,
                     static_cast<int>(H), m.Wout + j * DK + c0, static_cast<int>(cols), T(1),
                     c + r0 * DK + c0, static_cast<int>(DK));
      }
    } else {
      // Whole rows here (c0 = 0, c1 = DK).
      const auto [ja, jb] = used(i0, i1);
      T* P = ws.mixed.data();
      if (jb > ja && packed_readout) {
        if constexpr (std::is_same_v<T, float>) {
          // Whole panels around the functions' columns.
          constexpr int64_t Q = PackedWeights::kPanel;
          packed_gemm(i1 - i0, top + i0 * H, H, packed->w, P + i0 * cols, cols, ja * DK / Q * Q,
                      std::min(cols, (jb * DK + Q - 1) / Q * Q), false);
        }
      } else if (jb > ja) {
        blas::gemm(false, false, static_cast<int>(i1 - i0), static_cast<int>((jb - ja) * DK),
                   static_cast<int>(H), T(1), top + i0 * H, static_cast<int>(H),
                   m.Wout + ja * DK, static_cast<int>(cols), T(0), P + i0 * cols + ja * DK,
                   static_cast<int>(cols));
      }
      for (int64_t i = i0; i < i1; ++i) {
        const double* g = m.basis + (t[i] - 1) * J;
        T* __restrict ci = c + i * DK;
        for (int64_t j = ja; j < jb; ++j)
          if (g[j] != 0.0) {
            const T gj = static_cast<T>(g[j]);
            const T* __restrict pj = P + i * cols + j * DK;
            for (int64_t q = 0; q < DK; ++q) ci[q] += gj * pj[q];
          }
      }
    }
    for (int64_t i = i0; i < i1; ++i) {
      const DiffusionStep<T> s = step_scalars(m, t[i]);
      const double* g = m.basis + (t[i] - 1) * J;
      T* ci = c + i * DK;
      for (int64_t j = 0; j < J; ++j)
        if (g[j] != 0.0) {
          const T gj = static_cast<T>(g[j]);
          const T* bj = m.bout + j * DK;
          for (int64_t q = c0; q < c1; ++q) ci[q] += gj * bj[q];
        }
      double* part = partial.data() + i * blocks;
      if (!sched) {
        // The KL per unit in a vector loop (d loss / d c written over c), then summed per
        // block of 16 units in unit order.
        kl_row.resize(d1 - d0);
        if (gauss)
          gauss_kl_row<T>(s, x0i + i * D + d0, ws.xt.data() + i * D + d0, ci + d0 * K,
                          kl_row.data(), scale, d1 - d0);
        else
          binomial_kl_row<T>(s, x0i + i * D + d0, ws.xt.data() + i * D + d0, ci + d0 * K,
                             kl_row.data(), scale, d1 - d0);
        for (int64_t d = d0; d < d1; ++d) part[d / 16] += static_cast<double>(kl_row[d - d0]);
        continue;
      }
      // A learned schedule (Gaussian units): the KL as above, and its derivatives with
      // respect to the schedule, in double: 1 - alphabar_{t-1} and beta_t can be ~1e-6, and
      // the terms cancel.
      const DiffusionStep<double> s64 = step_scalars<T, double>(m, t[i]);
      for (int64_t d = d0; d < d1; ++d) {
        const T x_0 = x0i[i * D + d], x_t = ws.xt[i * D + d];
        T* cd = ci + d * K;
        double gb, gA, gx;
        diffusion_gauss_kl_schedule<double>(s64, x_0, x_t, cd[0], cd[1], gb, gA, gx);
        part_beta[i * blocks + d / 16] += static_cast<double>(scale) * gb;
        part_A[i * blocks + d / 16] += static_cast<double>(scale) * gA;
        g_x[i * D + d] = static_cast<T>(scale * gx);
        T d_zm, d_zs;
        const T kl = diffusion_gauss_kl(s, x_0, x_t, cd[0], cd[1], d_zm, d_zs);
        part[d / 16] += static_cast<double>(kl);
        cd[0] = scale * d_zm;  // d loss / d c, in place
        cd[1] = scale * d_zs;
      }
    }
  };
  if (DK >= 256)  // wide (images): column slices, each W_j streamed once
    parallel_columns(DK, 16 * K, 64, slices_per_thread(B),
                     [&](int64_t c0, int64_t c1) { readout_block(0, B, c0, c1); });
  else  // a few units: row slices, in blocks of 64 rows, which use fewer basis functions
    parallel_rows(B, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t i0 = r0; i0 < r1; i0 += kNarrowBlock)
        readout_block(i0, std::min(r1, i0 + kNarrowBlock), 0, DK);
    });
  const double constant = diffusion_bound_constant(m);
  double total = 0;
  for (int64_t i = 0; i < B; ++i) {
    double kl = 0;
    for (int64_t b = 0; b < blocks; ++b) kl += partial[i * blocks + b];
    const double loss = static_cast<double>(m.steps - 1) * kl + constant;
    if (row_loss) row_loss[order[i]] = loss;
    total += loss;
  }
  if (!grads) return total / static_cast<double>(B);

  // 5. Backward. W_j's gradient from the scaled h of its rows, b_j's from g-weighted sums.
  const T* dc = ws.c.data();
  if (DK >= 256) {
    // Written with beta 0 (a function no row uses gets zeros): no memset of all of W first.
    for (int64_t j = 0; j < J; ++j)
      gemm_tn_accumulate<T>(hi[j] - lo[j], H, DK, ws.scaled.data() + off[j] * H, H,
                            dc + lo[j] * DK, DK, grads->Wout + j * DK, cols, T(0));
  } else {
    // Narrow: E_i = g_j(t_i) dc_i for each j, side by side (zero where g_j(t_i) is), over P's
    // buffer; then W's gradient is one product h^T E over all rows.
    T* E = ws.mixed.data();
    pool().parallel_for(B, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        const double* g = m.basis + (t[i] - 1) * J;
        for (int64_t j = 0; j < J; ++j) {
          T* __restrict e = E + i * cols + j * DK;
          const T gj = static_cast<T>(g[j]);
          const T* __restrict d = dc + i * DK;
          if (gj == T(0))  // not gj * d: an infinite d of another function's row stays out
            std::fill(e, e + DK, T(0));
          else
            for (int64_t q = 0; q < DK; ++q) e[q] = gj * d[q];
        }
      }
    });
    // Slices of W's rows: each thread packs its part of h and all of E (column slices would
    // each pack all of h).
    parallel_rows(H, 16, [&](int64_t h0, int64_t h1) {
      blas::gemm(true, false, static_cast<int>(h1 - h0), static_cast<int>(cols),
                 static_cast<int>(B), T(1), top + h0, static_cast<int>(H), E,
                 static_cast<int>(cols), T(0), grads->Wout + h0 * cols, static_cast<int>(cols));
    });
  }
  parallel_columns(DK, 16, 64, 1, [&](int64_t q0, int64_t q1) {
    for (int64_t j = 0; j < J; ++j) {
      T* gb = grads->bout + j * DK;
      for (int64_t q = q0; q < q1; ++q) gb[q] = T(0);
      for (int64_t i = lo[j]; i < hi[j]; ++i) {
        const T g = static_cast<T>(m.basis[(t[i] - 1) * J + j]);
        for (int64_t q = q0; q < q1; ++q) gb[q] += g * dc[i * DK + q];
      }
    }
  }, false);  // sums over rows in order: the same for any cut
  // d h_i = sum_j g_j(t_i) dc_i W_j^T, column slices of h over the pool.
  ws.d_top.resize(B * H);
  T* d_top = ws.d_top.data();
  if (narrow) {
    // d h = E W^T over the basis functions each block of rows uses.
    const T* E = ws.mixed.data();
    parallel_rows(B, 16, [&](int64_t r0, int64_t r1) {
      for (int64_t i0 = r0; i0 < r1; i0 += kNarrowBlock) {
        const int64_t i1 = std::min(r1, i0 + kNarrowBlock);
        const auto [ja, jb] = used(i0, i1);
        if (jb > ja && packed_readout) {
          // Over the block's functions only: a function no row of the block uses must not
          // reach d h (0 times an infinite weight is NaN).
          if constexpr (std::is_same_v<T, float>)
            packed_gemm_k(i1 - i0, E + i0 * cols + ja * DK, cols, packed->wt, ja * DK, jb * DK,
                          d_top + i0 * H, H, 0, H, false);
        } else if (jb > ja)
          blas::gemm(false, true, static_cast<int>(i1 - i0), static_cast<int>(H),
                     static_cast<int>((jb - ja) * DK), T(1), E + i0 * cols + ja * DK,
                     static_cast<int>(cols), m.Wout + ja * DK, static_cast<int>(cols), T(0),
                     d_top + i0 * H, static_cast<int>(H));
        else
          std::fill(d_top + i0 * H, d_top + i1 * H, T(0));
      }
    });
  } else {
    parallel_columns(H, 16, 64, slices_per_thread(B), [&](int64_t h0, int64_t h1) {
      const int64_t w = h1 - h0;
      std::vector<T> tmp;
      for (int64_t i = 0; i < B; ++i)
        for (int64_t h = h0; h < h1; ++h) d_top[i * H + h] = T(0);
      for (int64_t j = 0; j < J; ++j) {
        const int64_t n = hi[j] - lo[j];
        if (n == 0) continue;
        tmp.resize(n * w);
        blas::gemm(false, true, static_cast<int>(n), static_cast<int>(w), static_cast<int>(DK),
                   T(1), dc + lo[j] * DK, static_cast<int>(DK), m.Wout + h0 * cols + j * DK,
                   static_cast<int>(cols), T(0), tmp.data(), static_cast<int>(w));
        for (int64_t i = 0; i < n; ++i) {
          const T g = static_cast<T>(m.basis[(t[lo[j] + i] - 1) * J + j]);
          T* dst = d_top + (lo[j] + i) * H + h0;
          const T* src = tmp.data() + i * w;
          for (int64_t h = 0; h < w; ++h) dst[h] += g * src[h];
        }
      }
    });
  }
  std::vector<T>& d_x = ws.d_x;
  d_x.resize(sched ? B * D : 0);
  mlp_backward<T>(hidden, Activation::LeakyRelu, B, ws.xt.data(), acts, d_top, grads->W,
                  grads->b, sched ? d_x.data() : nullptr);
  if (sched) {
    // x_t = sqrt(ab_t) x_0 + sqrt(1 - ab_t) eps with ab_t = A alpha: its gradient (direct and
    // through the network) moves to beta_t and A.
    for (int64_t i = 0; i < B; ++i) {
      const double ab = m.alphabar[t[i] - 1], A = t[i] > 1 ? m.alphabar[t[i] - 2] : 1.0;
      const double alpha = 1.0 - m.beta[t[i] - 1], sa = std::sqrt(ab), sn = std::sqrt(1 - ab);
      double g_ab = 0;
      for (int64_t d = 0; d < D; ++d) {
        const double x_0 = ws.xd[i * D + d], eps = eps_store[i * D + d];
        g_ab += static_cast<double>(g_x[i * D + d] + d_x[i * D + d]) *
                (0.5 * x_0 / sa - 0.5 * eps / sn);
      }
      double gb = -A * g_ab, gA = alpha * g_ab;
      for (int64_t b = 0; b < blocks; ++b) {
        gb += part_beta[i * blocks + b];
        gA += part_A[i * blocks + b];
      }
      a.g_beta[order[i]] = gb;
      a.g_abprev[order[i]] = gA;
    }
  }
  if (a.t_out)
    for (int64_t i = 0; i < B; ++i) a.t_out[order[i]] = t[i];
  return total / static_cast<double>(B);
}

#define WB_INSTANTIATE(T)                                                                     \
  template double diffusion_bound<T>(const DiffusionNet<T>&, const BoundArgs&, const T*,      \
                                     double*, DiffusionGrads<T>*);                            \
  template double diffusion_bound_constant<T>(const DiffusionNet<T>&);
WB_INSTANTIATE(float)
WB_INSTANTIATE(double)
#undef WB_INSTANTIATE

}  // namespace wb
