#include "walkback/sequence_gsn.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "walkback/conv1d.h"
#include "walkback/dense_mlp.h"
#include "walkback/elementwise.h"
#include "walkback/packed_gemm.h"
#include "walkback/random_ops.h"
#include "walkback/thread_pool.h"
#include "walkback/workspace.h"

namespace wb {
namespace {

// Streams of the hidden noise: two per layer (before and after tanh).
constexpr uint32_t kNoise1 = kStreamHidden, kNoise2 = kStreamHidden + 2;

// Buffers kept between calls (per thread), so that training batches do not pay the page
// faults of fresh allocations again and again.
template <class T>
struct SeqWorkspace {
  std::vector<T> in, W1y, Y, a1, work1, workY, p, a2, td;
  std::vector<std::vector<T>> cols1, y1, h1, cols2, y2, h2, dlog;
  std::vector<T> dW1y, dh1, dh2, dh2_prev, da2, dp, dt, colsT, colsK;
  // The weights packed once per call for walkback's kernel (float; empty where the BLAS
  // multiplies): W1, W2 and W1y for the convolutions, W2^T and W1y^T for their transposes.
  PackedWeights w1, w2, w2t, wy, wyt;
  size_t bytes() const {
    return total_bytes(in, W1y, Y, a1, work1, workY, p, a2, td, cols1, y1, h1, cols2, y2, h2,
                       dlog, dW1y, dh1, dh2, dh2_prev, da2, dp, dt, colsT, colsK) +
           w1.bytes() + w2.bytes() + w2t.bytes() + wy.bytes() + wyt.bytes();
  }
};

template <class T>
struct Run {
  const SeqGsnModel<T>& m;
  const SeqGsnArgs& a;
  // The thread's kept buffers (workspace.h), released when the run ends if they are large.
  KeptWorkspace<SeqWorkspace<T>> work;
  SeqWorkspace<T>& ws = *work;
  SeqShape s1, s2;        // positions; pooled positions
  std::vector<int32_t> len1, len2;
  Conv1d c1, c2, cy;      // (Cin + K) -> C1; C1 -> C2; the label rows of conv1: K -> C1
  int64_t Cx, R1, R2;     // input channels; rows of layer 1 (N * L) and of layer 2
  StreamKey key;
  std::vector<T>&in = ws.in, &W1y = ws.W1y, &Y = ws.Y, &a1 = ws.a1, &work1 = ws.work1,
  &workY = ws.workY;
  // Per step, kept for the backward pass.
  std::vector<std::vector<T>>&cols1 = ws.cols1, &y1 = ws.y1, &h1 = ws.h1, &cols2 = ws.cols2,
  &y2 = ws.y2, &h2 = ws.h2, &dlog = ws.dlog;

  Run(const SeqGsnModel<T>& m_, const SeqGsnArgs& a_, const T* x) : m(m_), a(a_) {
    if (m.width < 1 || m.width % 2 == 0) throw std::invalid_argument("width must be odd");
    if (m.pool < 1) throw std::invalid_argument("pool must be >= 1");
    const int64_t N = a.N, L = a.L, L2 = (L + m.pool - 1) / m.pool;
    Cx = m.Cin + m.K;
    len1.resize(N);
    len2.resize(N);
    for (int64_t n = 0; n < N; ++n) {
      len1[n] = a.lengths ? a.lengths[n] : static_cast<int32_t>(L);
      if (len1[n] < 0 || len1[n] > L) throw std::invalid_argument("a length is outside [0, L]");
      len2[n] = static_cast<int32_t>((len1[n] + m.pool - 1) / m.pool);
    }
    s1 = SeqShape{N, L, len1.data()};
    s2 = SeqShape{N, L2, len2.data()};
    c1 = Conv1d{Cx, m.C1, m.width};
    c2 = Conv1d{m.C1, m.C2, m.width};
    cy = Conv1d{m.K, m.C1, m.width};
    R1 = N * L;
    R2 = N * L2;
    key = stream_key(a.seed);
    in.assign(R1 * Cx, T(0));
    for (int64_t r = 0; r < R1; ++r)
      std::copy(x + r * m.Cin, x + (r + 1) * m.Cin, in.data() + r * Cx);
    // The label rows of W1, tap by tap: what the tied decoding multiplies by.
    W1y.resize(m.width * m.K * m.C1);
    for (int64_t k = 0; k < m.width; ++k)
      for (int64_t j = 0; j < m.K; ++j)
        std::copy(m.W1 + (k * Cx + m.Cin + j) * m.C1, m.W1 + (k * Cx + m.Cin + j + 1) * m.C1,
                  W1y.data() + (k * m.K + j) * m.C1);
    Y.assign(R1 * m.K, T(0));
    a1.resize(R1 * m.C1);
    work1.resize(std::max(R2 * c2.taps(), R1 * cy.taps()));
    workY.resize(R1 * cy.taps());
    pack_weights();
  }

  // Every step multiplies by the same weights, forward and transposed: packed once here when
  // walkback's kernel is the faster (float; products of many rows, where OpenBLAS's AVX-512
  // kernels are as fast), else cleared, since the kept packs may hold another call's weights.
  void pack_weights() {
    for (PackedWeights* w : {&ws.w1, &ws.w2, &ws.w2t, &ws.wy, &ws.wyt}) w->clear();
    if constexpr (std::is_same_v<T, float>) {
      if (!packed_gemm_pays(R2, a.steps) || !prefer_packed_gemm()) return;
      ws.w1.pack(m.W1, m.C1, false, c1.taps(), m.C1);
      ws.w2.pack(m.W2, m.C2, false, c2.taps(), m.C2);
      ws.w2t.pack(m.W2, m.C2, true, m.C2, c2.taps());
      ws.wy.pack(W1y.data(), m.C1, false, cy.taps(), m.C1);
      ws.wyt.pack(W1y.data(), m.C1, true, m.C1, cy.taps());
    }
  }

  uint32_t chain(int64_t n) const { return a.first_chain + static_cast<uint32_t>(n); }

  // The corrupted labels of step s into the label columns of `in`.
  void corrupt_labels(int64_t s) {
    pool().parallel_for(a.N, [&](int64_t n0, int64_t n1) {
      std::vector<float> u;
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t len = len1[n], units = len * m.K;
        u.assign(units, 0.5f);
        if (a.noise && units)
          uniform_row(key, chain(n), static_cast<uint32_t>(s), kStreamCorrupt, 0, units, u.data());
        for (int64_t l = 0; l < a.L; ++l) {
          T* dst = in.data() + (n * a.L + l) * Cx + m.Cin;
          const T* src = Y.data() + (n * a.L + l) * m.K;
          for (int64_t j = 0; j < m.K; ++j)
            dst[j] = l >= len ? T(0)
                     : a.noise
                         ? corrupt_value<T>(Corruption::SaltAndPepper, m.corruption, src[j],
                                            u[l * m.K + j], 0.0f)
                         : src[j];
        }
      }
    });
  }

  // y = tanh(pre + s n), h = y + s n' on the valid rows of a (N, rows_per, C) layer; zero past.
  void hidden(const std::vector<T>& pre, int64_t rows_per, const std::vector<int32_t>& lens,
              int64_t C, int64_t s, uint32_t stream, std::vector<T>& y, std::vector<T>& h) {
    y.resize(pre.size());  // every element is written below: no clearing pass
    h.resize(pre.size());
    pool().parallel_for(a.N, [&](int64_t n0, int64_t n1) {
      std::vector<float> np, nq;
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t units = lens[n] * C, base = n * rows_per * C;
        std::fill(y.begin() + base + units, y.begin() + base + rows_per * C, T(0));
        std::fill(h.begin() + base + units, h.begin() + base + rows_per * C, T(0));
        np.assign(units, 0.0f);
        nq.assign(units, 0.0f);
        if (a.noise && units) {
          normal_row(key, chain(n), static_cast<uint32_t>(s), stream, 0, units, np.data());
          normal_row(key, chain(n), static_cast<uint32_t>(s), stream + 1, 0, units, nq.data());
        }
        for (int64_t i = 0; i < units; ++i)
          h[base + i] = gsn_hidden_unit<T>(Activation::Tanh, pre[base + i], m.noise_pre, np[i],
                                           m.noise_post, nq[i], y[base + i]);
      }
    });
  }

  // out (N, L2, C) = window means of src (N, L, C) over `pool` positions (divided by pool,
  // not by the count, so that unpool_add is its exact adjoint).
  void pool_means(const T* src, int64_t C, T* out) const {
    const T inv = T(1) / T(m.pool);
    pool().parallel_for(a.N, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t j = 0; j < s2.L; ++j) {
          T* o = out + (n * s2.L + j) * C;
          std::fill(o, o + C, T(0));
          for (int64_t l = j * m.pool; l < std::min<int64_t>((j + 1) * m.pool, len1[n]); ++l)
            for (int64_t i = 0; i < C; ++i) o[i] += inv * src[(n * a.L + l) * C + i];
        }
    });
  }

  // dst (N, L, C) += src (N, L2, C) / pool, repeated over each window's valid positions.
  void unpool_add(const T* src, int64_t C, T* dst) const {
    const T inv = T(1) / T(m.pool);
    pool().parallel_for(a.N, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n)
        for (int64_t l = 0; l < len1[n]; ++l) {
          const T* sp = src + (n * s2.L + l / m.pool) * C;
          T* d = dst + (n * a.L + l) * C;
          for (int64_t i = 0; i < C; ++i) d[i] += inv * sp[i];
        }
    });
  }

  // Step s (its random numbers) from the labels in Y, into the buffers of `slot`, and
  // `logits` (R1, K), zero past a length. h2_prev: the previous step's h2 or nullptr.
  void forward(int64_t s, int64_t slot, const T* h2_prev, std::vector<T>& logits) {
    corrupt_labels(s);
    cols1[slot].resize(R1 * c1.taps());
    conv1d_forward<T>(s1, c1, in.data(), Cx, m.W1, m.b1, cols1[slot].data(), a1.data(), &ws.w1);
    if (h2_prev) {
      std::vector<T>& td = ws.td;
      td.assign(R2 * m.C1, T(0));
      conv1d_transpose_add<T>(s2, c2, h2_prev, m.W2, work1.data(), td.data(), m.C1, &ws.w2t);
      unpool_add(td.data(), m.C1, a1.data());
    }
    hidden(a1, a.L, len1, m.C1, s, kNoise1, y1[slot], h1[slot]);
    std::vector<T>&p = ws.p, &a2 = ws.a2;
    p.resize(R2 * m.C1);
    a2.resize(R2 * m.C2);
    pool_means(h1[slot].data(), m.C1, p.data());
    cols2[slot].resize(R2 * c2.taps());
    conv1d_forward<T>(s2, c2, p.data(), m.C1, m.W2, m.b2, cols2[slot].data(), a2.data(),
                      &ws.w2);
    hidden(a2, s2.L, len2, m.C2, s, kNoise2, y2[slot], h2[slot]);
    logits.assign(R1 * m.K, T(0));
    conv1d_transpose_add<T>(s1, cy, h1[slot].data(), W1y.data(), workY.data(), logits.data(),
                            m.K, &ws.wyt);
    for (int64_t n = 0; n < a.N; ++n)
      for (int64_t l = 0; l < len1[n]; ++l)
        for (int64_t j = 0; j < m.K; ++j) logits[(n * a.L + l) * m.K + j] += m.c[j];
  }

  // Y = a one-hot sample of softmax(logits) per valid position; probs gets the softmax.
  void sample(int64_t s, const std::vector<T>& logits, std::vector<T>& probs) {
    probs = logits;
    pool().parallel_for(a.N, [&](int64_t n0, int64_t n1) {
      std::vector<float> u;
      for (int64_t n = n0; n < n1; ++n) {
        const int64_t len = len1[n];
        u.assign(len, 0.5f);
        if (len) uniform_row(key, chain(n), static_cast<uint32_t>(s), kStreamSample, 0, len, u.data());
        for (int64_t l = 0; l < len; ++l) {
          const int64_t r = n * a.L + l;
          categorical_mean_sample<T>(probs.data() + r * m.K, Y.data() + r * m.K, m.K, u[l]);
        }
      }
    });
  }

  void resize_steps(int64_t S) {
    for (auto* v : {&cols1, &y1, &h1, &cols2, &y2, &h2, &dlog}) v->resize(S);
  }
};

}  // namespace

template <class T>
double seq_gsn_walkback(const SeqGsnModel<T>& m, const SeqGsnArgs& a, const T* x,
                        const int32_t* y, SeqGsnGrads<T>* g) {
  Run<T> run(m, a, x);
  const int64_t S = a.steps, K = m.K;
  run.resize_steps(S);
  int64_t valid = 0;
  for (int64_t n = 0; n < a.N; ++n) {
    valid += run.len1[n];
    for (int64_t l = 0; l < run.len1[n]; ++l) {
      const int32_t t = y[n * a.L + l];
      if (t < 0 || t >= K) throw std::invalid_argument("a label is outside [0, K)");
      run.Y[(n * a.L + l) * K + t] = T(1);
    }
  }
  if (valid == 0) throw std::invalid_argument("no valid positions in the batch");
  const T scale = T(1) / T(valid);
  double loss = 0.0;
  std::vector<T> logits, probs;
  std::vector<double> seq_loss(a.N);
  for (int64_t s = 0; s < S; ++s) {
    run.forward(s, s, s > 0 ? run.h2[s - 1].data() : nullptr, logits);
    run.dlog[s].assign(run.R1 * K, T(0));
    // The labels' NLL per sequence in parallel, added over sequences in order: the same
    // result for any number of threads.
    pool().parallel_for(a.N, [&](int64_t n0, int64_t n1) {
      std::vector<T> onehot(K);
      for (int64_t n = n0; n < n1; ++n) {
        double ls = 0.0;
        for (int64_t l = 0; l < run.len1[n]; ++l) {
          const int64_t r = n * a.L + l;
          std::fill(onehot.begin(), onehot.end(), T(0));
          onehot[y[r]] = T(1);
          ls += double(categorical_nll_grad<T>(logits.data() + r * K, onehot.data(), K, scale,
                                               run.dlog[s].data() + r * K));
        }
        seq_loss[n] = ls;
      }
    });
    for (int64_t n = 0; n < a.N; ++n) loss += seq_loss[n];
    if (s + 1 < S) run.sample(s, logits, probs);
  }
  loss /= double(valid);
  if (!g) return loss;

  const int64_t C1 = m.C1, C2 = m.C2, R1 = run.R1, R2 = run.R2;
  SeqWorkspace<T>& w = run.ws;
  std::vector<T>&dW1y = w.dW1y, &dh1 = w.dh1, &dh2 = w.dh2, &dh2_prev = w.dh2_prev, &da2 = w.da2,
  &dp = w.dp, &dt = w.dt, &colsT = w.colsT, &colsK = w.colsK;
  dW1y.assign(m.width * K * C1, T(0));
  dh2.assign(R2 * C2, T(0));
  dh1.resize(R1 * C1);
  dh2_prev.resize(R2 * C2);
  da2.resize(R2 * C2);
  dp.resize(R2 * C1);
  dt.resize(R2 * C1);
  colsT.resize(R2 * run.c2.taps());
  colsK.resize(R1 * run.cy.taps());
  std::fill(g->W1, g->W1 + m.width * run.Cx * C1, T(0));
  std::fill(g->b1, g->b1 + C1, T(0));
  std::fill(g->W2, g->W2 + m.width * C1 * C2, T(0));
  std::fill(g->b2, g->b2 + C2, T(0));
  std::fill(g->c, g->c + K, T(0));
  std::vector<T> csum(K);
  for (int64_t s = S - 1; s >= 0; --s) {
    // The labels' logits: c, and the tied decoding conv1_Y^T(h1).
    column_sums<T>(run.dlog[s].data(), R1, K, K, csum.data());
    for (int64_t j = 0; j < K; ++j) g->c[j] += csum[j];
    conv1d_forward<T>(run.s1, run.cy, run.dlog[s].data(), K, run.W1y.data(), nullptr,
                      colsK.data(), dh1.data(), &w.wy);
    conv1d_param_grad<T>(run.s1, run.cy, colsK.data(), run.h1[s].data(), dW1y.data(), nullptr);
    // h2 of this step reaches the loss only through the next step's top-down input.
    if (s + 1 < S) {
      const T* y2 = run.y2[s].data();
      pool().parallel_for(R2 * C2, [&](int64_t i0, int64_t i1) {
        for (int64_t i = i0; i < i1; ++i)
          da2[i] = dh2[i] * activation_grad_from_output<T>(Activation::Tanh, y2[i]);
      }, 4096);
      conv1d_param_grad<T>(run.s2, run.c2, run.cols2[s].data(), da2.data(), g->W2, g->b2);
      std::fill(dp.begin(), dp.end(), T(0));
      conv1d_transpose_add<T>(run.s2, run.c2, da2.data(), m.W2, run.work1.data(), dp.data(), C1,
                              &w.w2t);
      run.unpool_add(dp.data(), C1, dh1.data());
    }
    // Layer 1. Rows past a length stay zero: dh1 is zero there (the convolution and the
    // un-pooling write only valid rows), so tanh'(0) = 1 lets nothing through.
    std::vector<T>& da1 = dh1;
    const T* y1 = run.y1[s].data();
    pool().parallel_for(R1 * C1, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i)
        da1[i] *= activation_grad_from_output<T>(Activation::Tanh, y1[i]);
    }, 4096);
    conv1d_param_grad<T>(run.s1, run.c1, run.cols1[s].data(), da1.data(), g->W1, g->b1);
    // The top-down input up(conv2^T(h2[s-1])): gradients for W2 and for h2[s-1].
    if (s > 0) {
      run.pool_means(da1.data(), C1, dt.data());
      conv1d_forward<T>(run.s2, run.c2, dt.data(), C1, m.W2, nullptr, colsT.data(),
                        dh2_prev.data(), &w.w2);
      conv1d_param_grad<T>(run.s2, run.c2, colsT.data(), run.h2[s - 1].data(), g->W2, nullptr);
      std::swap(dh2, dh2_prev);
    }
  }
  for (int64_t k = 0; k < m.width; ++k)
    for (int64_t j = 0; j < K; ++j)
      for (int64_t i = 0; i < C1; ++i)
        g->W1[(k * run.Cx + m.Cin + j) * C1 + i] += dW1y[(k * K + j) * C1 + i];
  return loss;
}

template <class T>
void seq_gsn_predict(const SeqGsnModel<T>& m, const SeqGsnArgs& a, const T* x, int64_t burn_in,
                     T* probs) {
  if (burn_in < 0 || burn_in >= a.steps) throw std::invalid_argument("burn_in must be in [0, steps)");
  Run<T> run(m, a, x);
  const int64_t S = a.steps, K = m.K;
  run.resize_steps(2);  // only the current and the previous step are kept
  for (int64_t n = 0; n < a.N; ++n)
    for (int64_t l = 0; l < run.len1[n]; ++l)
      std::fill_n(run.Y.data() + (n * a.L + l) * K, K, T(1) / T(K));
  std::fill(probs, probs + run.R1 * K, T(0));
  std::vector<T> logits, p;
  const T share = T(1) / T(S - burn_in);
  for (int64_t s = 0; s < S; ++s) {
    const int64_t cur = s % 2, prev = 1 - cur;
    // The previous step's h2 sits in the other slot until this step's forward overwrites it.
    run.forward(s, cur, s > 0 ? run.h2[prev].data() : nullptr, logits);
    run.sample(s, logits, p);
    if (s >= burn_in)
      for (int64_t i = 0; i < run.R1 * K; ++i) probs[i] += share * p[i];
  }
}

template double seq_gsn_walkback<float>(const SeqGsnModel<float>&, const SeqGsnArgs&,
                                        const float*, const int32_t*, SeqGsnGrads<float>*);
template double seq_gsn_walkback<double>(const SeqGsnModel<double>&, const SeqGsnArgs&,
                                         const double*, const int32_t*, SeqGsnGrads<double>*);
template void seq_gsn_predict<float>(const SeqGsnModel<float>&, const SeqGsnArgs&, const float*,
                                     int64_t, float*);
template void seq_gsn_predict<double>(const SeqGsnModel<double>&, const SeqGsnArgs&,
                                      const double*, int64_t, double*);

}  // namespace wb
