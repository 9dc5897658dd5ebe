#include "walkback/dae_train.h"

#include <algorithm>
#include <type_traits>
#include <vector>

#include "walkback/corrupt.h"
#include "walkback/dispatch.h"
#include "walkback/elementwise.h"
#include "walkback/packed_gemm.h"
#include "walkback/parallel_gemm.h"
#include "walkback/random_ops.h"
#include "walkback/row_kernels.h"
#include "walkback/thread_pool.h"
#include "walkback/workspace.h"

namespace wb {
namespace {

constexpr int64_t kAlign = 16;  // column slices are whole blocks of 16 units

// sum[j] = sum over rows r of a[r * ld + j], for j in [j0, j1), rows in order.
template <class T>
void column_sums(const T* a, int64_t rows, int64_t ld, int64_t j0, int64_t j1, T* sum) {
  for (int64_t j = j0; j < j1; ++j) sum[j] = T(0);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t j = j0; j < j1; ++j) sum[j] += a[r * ld + j];
}

// dae_walkback's buffers, kept per thread between calls (workspace.h): training calls it once
// per batch with the same shapes, and fresh vectors were zeroed (memset ~1.2% of a step).
template <class T>
struct WalkbackWork {
  // xo: the corrupted inputs X~ of the k steps, then dO; ah: dA, then the hidden units H. So
  // the tied weight gradient X~^T dA + dO^T H is one product, [X~; dO]^T [dA; H], of 2 k B
  // rows: C is written once, not written and then read back and written again.
  std::vector<T> xo, ah, o, xs, zeros;
  std::vector<double> partial;
  // The weights packed once per batch for walkback's kernel (prefer_packed_gemm; float): op(B)
  // of the encoder (W, also the tied backward product), of the decoder (W^T or U) and of the
  // untied backward product (U^T). Empty where the BLAS multiplies.
  PackedWeights enc, dec, back;
  size_t bytes() const {
    return total_bytes(xo, ah, o, xs, zeros, partial) + enc.bytes() + dec.bytes() +
           back.bytes();
  }
};

// Packs what this batch multiplies by, or clears the kept packs (they may hold another
// batch's weights): k encoder and k decoder products of B rows, and, with gradients, one
// backward product.
template <class T>
void pack_walkback_weights(const DaeModel<T>& m, int64_t B, int64_t K, bool grads,
                           WalkbackWork<T>& w) {
  w.enc.clear();
  w.dec.clear();
  w.back.clear();
  if constexpr (std::is_same_v<T, float>) {
    if (!prefer_packed_gemm() || !packed_gemm_pays(B, K + 1)) return;
    w.enc.pack(m.W, m.H, false, m.D, m.H);
    if (m.U) {
      w.dec.pack(m.U, m.D, false, m.H, m.D);
      if (grads) w.back.pack(m.U, m.D, true, m.D, m.H);
    } else {
      w.dec.pack(m.W, m.H, true, m.H, m.D);
    }
  }
}

}  // namespace

template <class T>
double dae_walkback(const DaeModel<T>& m, const WalkbackArgs& a, const T* x, DaeGrads<T>* grads) {
  const int64_t B = a.batch, D = m.D, H = m.H, K = a.walkbacks;
  const int64_t KB = K * B;
  const StreamKey key = stream_key(a.seed);
  const int64_t blocks = (D + kAlign - 1) / kAlign;
  KeptWorkspace<WalkbackWork<T>> work;
  // Stacked over the k steps: corrupted inputs, hidden units, d loss / d decoder pre-activation;
  // every element is written before it is read.
  std::vector<T>&o = work->o, &xs = work->xs;
  work->xo.resize((grads ? 2 : 1) * KB * D);  // dO only with gradients
  work->ah.resize((grads ? KB * H : 0) + KB * H);
  T* const xt = work->xo.data();
  T* const d_o = xt + KB * D;
  T* const d_a = work->ah.data();
  T* const h = d_a + (grads ? KB * H : 0);
  o.resize(B * D);
  xs.resize(B * D);
  std::vector<T>& zeros = work->zeros;
  zeros.assign(D, T(0));
  // Per (step, row, block of 16 units) partial losses, summed in a fixed order at the end so the
  // loss does not depend on how columns were split over threads.
  std::vector<double>& partial = work->partial;
  partial.assign(KB * blocks, 0.0);
  const T scale = T(1) / static_cast<T>(B);

  corrupt_batch<T>(m.corruption, m.corruption_param, x, xt, B, D, a.seed, 0,
                   a.first_chain);
  pack_walkback_weights(m, B, K, grads != nullptr, *work);
  const PackedWeights* enc = work->enc.empty() ? nullptr : &work->enc;
  const PackedWeights* dec = work->dec.empty() ? nullptr : &work->dec;
  for (int64_t j = 0; j < K; ++j) {
    const uint32_t step = static_cast<uint32_t>(j);
    T* xt_j = xt + j * B * D;
    T* h_j = h + j * B * H;
    with_activation(m.activation, [&](auto act) {
      weight_gemm_columns<T>(enc, false, B, H, D, xt_j, D, m.W, H, h_j, H, kAlign,
                             [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
                               for (int64_t r = r0; r < r1; ++r)
                                 bias_activate<T, decltype(act)::value>(h_j + r * H + j0,
                                                                        m.b1 + j0, j1 - j0);
                             });
    });
    const bool counted = !a.last_only || j + 1 == K;
    const bool more = j + 1 < K;
    with_reconstruction(m.reconstruction, [&](auto rc) {
      constexpr Reconstruction R = decltype(rc)::value;
      // On blocks of rows and columns: the whole width once per slice after the BLAS, a few
      // rows by a few panels after walkback's kernel (so its buffers are the thread's own).
      // Between steps the block's uniforms (the sample's, and the corruption's unless it
      // draws normals) are drawn for all its rows at once, as the chain draws them.
      const bool block_sample = more && R == Reconstruction::Bernoulli;
      const bool block_corrupt = more && corruption_needs_uniform(m.corruption);
      // Rows [r0, r1) of the column slice [d0, d1), at most kDrawRows of them.
      auto rows_done = [&](int64_t r0, int64_t r1, int64_t d0, int64_t d1) {
        const int64_t w = d1 - d0, rows = r1 - r0;
        const uint32_t chain0 = a.first_chain + static_cast<uint32_t>(r0);
        thread_local std::vector<T> nll, dummy;
        thread_local std::vector<float> scratch;
        thread_local BlockUniforms sample_u, corrupt_u;
        nll.resize(w);
        scratch.resize(w);
        dummy.resize(grads ? 0 : w);
        if (block_sample) sample_u.draw(key, chain0, rows, step, kStreamSample, d0, w);
        if (block_corrupt) corrupt_u.draw(key, chain0, rows, step + 1, kStreamCorrupt, d0, w);
        for (int64_t r = r0; r < r1; ++r) {
          const uint32_t chain = a.first_chain + static_cast<uint32_t>(r);
          T* orow = o.data() + r * D + d0;
          T* drow = grads ? d_o + (j * B + r) * D + d0 : dummy.data();
          nll_grad_row<T, R>(orow, m.b0 + d0, x + r * D + d0, nll.data(), drow,
                             counted ? scale : T(0), m.sigma, w);
          if (counted) {
            double* part = partial.data() + (j * B + r) * blocks;
            for (int64_t i = 0; i < w; ++i) part[(d0 + i) / kAlign] += static_cast<double>(nll[i]);
          }
          if (more) {
            T* xr = xs.data() + r * D + d0;
            T* next = xt + ((j + 1) * B + r) * D + d0;
            const float* drawn = scratch.data();
            if (block_sample)
              drawn = sample_u.row(r - r0);
            else
              normal_row(key, chain, step, kStreamSample, d0, w, scratch.data());
            sample_row<T, R>(xr, orow, zeros.data(), nullptr, m.sigma, drawn, w);
            if (!block_corrupt)
              corrupt_row<T>(m.corruption, m.corruption_param, xr, next, d0, w, key, chain,
                             step + 1, scratch.data());
          }
        }
        // After all the block's samples, as the chain does (a row read right behind its
        // sample's stores stalls).
        if (block_corrupt)
          for (int64_t r = r0; r < r1; ++r)
            corrupt_drawn<T>(m.corruption, m.corruption_param, xs.data() + r * D + d0,
                             xt + ((j + 1) * B + r) * D + d0, w,
                             corrupt_u.row(r - r0));
      };
      auto epilogue = [&](int64_t r0, int64_t r1, int64_t d0, int64_t d1) {
        for (int64_t r = r0; r < r1; r += kDrawRows)
          rows_done(r, std::min(r + kDrawRows, r1), d0, d1);
      };
      if (m.U)
        weight_gemm_columns<T>(dec, false, B, D, H, h_j, H, m.U, D, o.data(), D, kAlign,
                               epilogue);
      else
        weight_gemm_columns<T>(dec, true, B, D, H, h_j, H, m.W, H, o.data(), D, kAlign,
                               epilogue);
    });
  }
  double loss = 0.0;
  for (double p : partial) loss += p;
  loss /= static_cast<double>(B);
  if (!grads) return loss;

  // Backward, all k steps at once. dA = (dO W) * act'(h) (tied) or (dO U^T) * act'(h).
  with_activation(m.activation, [&](auto act) {
    auto epi = [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
      for (int64_t r = r0; r < r1; ++r)
        mul_activation_grad<T, decltype(act)::value>(d_a + r * H + j0,
                                                     h + r * H + j0, j1 - j0);
    };
    if (m.U)
      weight_gemm_columns<T>(work->back.empty() ? nullptr : &work->back, true, KB, H, D,
                             d_o, D, m.U, D, d_a, H, kAlign, epi);
    else
      weight_gemm_columns<T>(enc, false, KB, H, D, d_o, D, m.W, H, d_a, H, kAlign,
                             epi);
  });
  // db1 after the product: its blocks may split the rows, and the sums run over rows in order.
  parallel_columns(H, kAlign, 64, 4, [&](int64_t j0, int64_t j1) {
    column_sums(d_a, KB, H, j0, j1, grads->b1);
  }, false);
  // dW = X~^T dA + dO^T H when tied, as one product of 2 k B rows (xo, ah); untied, dW = X~^T dA
  // and dU = H^T dO (through walkback's kernel where it is preferred). db0 = column sums of dO.
  if (m.U) {
    gemm_tn_accumulate<T>(KB, D, H, xt, D, d_a, H, grads->W, H, T(0));
    gemm_tn_accumulate<T>(KB, H, D, h, H, d_o, D, grads->U, D, T(0));
  } else {
    gemm_tn_accumulate<T>(2 * KB, D, H, xt, D, d_a, H, grads->W, H, T(0));
  }
  parallel_columns(D, kAlign, 64, 4, [&](int64_t d0, int64_t d1) {
    column_sums(d_o, KB, D, d0, d1, grads->b0);
  }, false);
  return loss;
}

template double dae_walkback<float>(const DaeModel<float>&, const WalkbackArgs&, const float*,
                                    DaeGrads<float>*);
template double dae_walkback<double>(const DaeModel<double>&, const WalkbackArgs&, const double*,
                                     DaeGrads<double>*);

}  // namespace wb
