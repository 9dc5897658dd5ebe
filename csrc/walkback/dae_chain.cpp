#include "walkback/dae_chain.h"

#include <vector>

#include "walkback/blas.h"
#include "walkback/corrupt.h"
#include "walkback/dispatch.h"
#include "walkback/elementwise.h"
#include "walkback/random_ops.h"
#include "walkback/simd.h"
#include "walkback/thread_pool.h"

namespace wb {
namespace {

// h = act(h + b1) over one row.
template <class T, Activation A>
WB_SIMD_CLONES void bias_activate(T* h, const T* b1, int64_t n) {
  for (int64_t j = 0; j < n; ++j) h[j] = activate<T>(A, h[j] + b1[j]);
}

// From the decoder's pre-activation o (without bias): the mean, a sample of p(x | w) for the free
// units, the clamped units kept; w is left in o.
template <class T, Reconstruction R>
WB_SIMD_CLONES void sample_row(T* x, T* o, const T* b0, const uint8_t* clamp, T sigma,
                               const float* r, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T mean = reconstruction_mean<T>(R, o[i] + b0[i]);
    const T s = reconstruction_sample<T>(R, mean, sigma, r[i], r[i]);
    const bool keep = clamp && clamp[i];
    o[i] = keep ? x[i] : mean;
    x[i] = keep ? x[i] : s;
  }
}

template <class T>
struct Workspace {
  std::vector<T> xt, h, o;
};

// The B = 1 encoder: with binary corrupted input most units are 0, so h = b1 + the sum of the
// rows of W whose units are on reads a fraction of W (and writes act(h) in place).
template <class T>
void encode_sparse_row(const DaeModel<T>& m, const T* xt, T* h, const std::vector<int32_t>& on) {
  with_activation(m.activation, [&](auto act) {
    pool().parallel_for(
        m.H,
        [&](int64_t j0, int64_t j1) {
          T* hj = h + j0;
          const int64_t n = j1 - j0;
          for (int64_t j = 0; j < n; ++j) hj[j] = T(0);
          for (int32_t d : on) {
            const T v = xt[d];
            const T* w = m.W + d * m.H + j0;
            for (int64_t j = 0; j < n; ++j) hj[j] += v * w[j];
          }
          bias_activate<T, decltype(act)::value>(hj, m.b1 + j0, n);
        },
        256);
  });
}

}  // namespace

template <class T>
void dae_chain(const DaeModel<T>& m, const ChainArgs& a, T* x, T* records, T* means) {
  const int64_t B = a.chains, D = m.D, H = m.H;
  const StreamKey key = stream_key(a.seed);
  const int64_t total = a.burn_in + a.steps;
  Workspace<T> ws;
  ws.xt.resize(B * D);
  ws.h.resize(B * H);
  ws.o.resize(B * D);
  ThreadPool& tp = pool();
  const uint8_t* clamp = a.clamp;
  auto clamp_row = [&](int64_t r) {
    return clamp ? clamp + (a.clamp_per_chain ? r * D : 0) : nullptr;
  };

  corrupt_batch<T>(m.corruption, m.corruption_param, x, ws.xt.data(), B, D, a.seed,
                   a.first_step, a.first_chain);
  std::vector<int32_t> on;
  for (int64_t s = 0; s < total; ++s) {
    const uint32_t step = a.first_step + static_cast<uint32_t>(s);
    // Encode: h = act(x~ W + b1).
    bool done = false;
    if (B == 1) {
      on.clear();
      for (int64_t d = 0; d < D; ++d)
        if (ws.xt[d] != T(0)) on.push_back(static_cast<int32_t>(d));
      if (2 * static_cast<int64_t>(on.size()) <= D) {
        encode_sparse_row(m, ws.xt.data(), ws.h.data(), on);
        done = true;
      }
    }
    if (!done) {
      if (B == 1)
        blas::gemv(true, D, H, T(1), m.W, H, ws.xt.data(), T(0), ws.h.data());
      else
        blas::gemm(false, false, B, H, D, T(1), ws.xt.data(), D, m.W, H, T(0), ws.h.data(), H);
      with_activation(m.activation, [&](auto act) {
        tp.parallel_for(B, [&](int64_t r0, int64_t r1) {
          for (int64_t r = r0; r < r1; ++r)
            bias_activate<T, decltype(act)::value>(ws.h.data() + r * H, m.b1, H);
        });
      });
    }
    // Decode: o = h W^T (tied) or h U.
    if (B == 1) {
      if (m.U)
        blas::gemv(true, H, D, T(1), m.U, D, ws.h.data(), T(0), ws.o.data());
      else
        blas::gemv(false, D, H, T(1), m.W, H, ws.h.data(), T(0), ws.o.data());
    } else if (m.U) {
      blas::gemm(false, false, B, D, H, T(1), ws.h.data(), H, m.U, D, T(0), ws.o.data(), D);
    } else {
      blas::gemm(false, true, B, D, H, T(1), ws.h.data(), H, m.W, H, T(0), ws.o.data(), D);
    }
    // Sample, keep the clamped units, record, and corrupt for the next step, row by row.
    const bool last = s + 1 == total;
    const int64_t past = s + 1 - a.burn_in;
    T* rec = nullptr;
    if (a.every > 0 && past > 0 && past % a.every == 0 && records)
      rec = records + (past / a.every - 1) * B * D;
    with_reconstruction(m.reconstruction, [&](auto rc) {
      constexpr Reconstruction R = decltype(rc)::value;
      tp.parallel_for(B, [&](int64_t r0, int64_t r1) {
        std::vector<float> scratch(D);
        for (int64_t r = r0; r < r1; ++r) {
          const uint32_t chain = a.first_chain + static_cast<uint32_t>(r);
          T* xr = x + r * D;
          T* orow = ws.o.data() + r * D;
          if (R == Reconstruction::Bernoulli)
            uniform_row(key, chain, step, kStreamSample, D, scratch.data());
          else
            normal_row(key, chain, step, kStreamSample, D, scratch.data());
          sample_row<T, R>(xr, orow, m.b0, clamp_row(r), m.sigma, scratch.data(), D);
          if (rec) {
            const T* src = a.record_means ? orow : xr;
            for (int64_t i = 0; i < D; ++i) rec[r * D + i] = src[i];
          }
          if (last && means)
            for (int64_t i = 0; i < D; ++i) means[r * D + i] = orow[i];
          if (!last)
            corrupt_row<T>(m.corruption, m.corruption_param, xr, ws.xt.data() + r * D, D, key,
                           chain, step + 1, scratch.data());
        }
      });
    });
  }
}

template void dae_chain<float>(const DaeModel<float>&, const ChainArgs&, float*, float*, float*);
template void dae_chain<double>(const DaeModel<double>&, const ChainArgs&, double*, double*,
                                double*);

}  // namespace wb
