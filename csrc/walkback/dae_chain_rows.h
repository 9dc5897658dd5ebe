// What the DAE chain does to a block of visible units once the decoder's product for them is
// final: sample p(x | h), keep the clamped units, record, keep the last step's means and
// corrupt for the next step. Shared by the batched chain (dae_chain.cpp) and the one-chain pass
// (dae_chain_one.cpp), so both give a unit the same bits from the same pre-activation.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "walkback/corrupt.h"
#include "walkback/dae_chain.h"
#include "walkback/random_ops.h"
#include "walkback/row_kernels.h"

namespace wb {
namespace {  // row_kernels.h's SIMD clones are local to each translation unit

// The chain's state: x (samples), xt (their corruption, the next step's input) and o (the
// decoder's pre-activation, left as the means), each a row of D units per chain.
template <class T>
struct ChainState {
  const DaeModel<T>& m;
  const ChainArgs& a;
  StreamKey key;
  T* x;
  T* xt;
  T* o;
  T* means;  // the last step's means are copied here (nullptr: not asked for)
};

// Rows [q0, q1) (the chains r0 + q, at most kDrawRows of them) of the units [d0, d1) at
// `step`; rec: the record slab of this step (nullptr: none). The rows' uniforms (the sample's,
// and the corruption's unless it draws normals) are drawn together: one row's few dozen Philox
// blocks alone would not fill the interleaved sets of a SIMD pass (philox_simd.cpp).
template <class T, Reconstruction R>
void finish_chain_rows(const ChainState<T>& c, uint32_t step, bool last, T* rec, int64_t r0,
                       int64_t q0, int64_t q1, int64_t d0, int64_t d1) {
  const DaeModel<T>& m = c.m;
  const ChainArgs& a = c.a;
  const int64_t D = m.D, w = d1 - d0, rows = q1 - q0;
  const uint32_t chain0 = a.first_chain + static_cast<uint32_t>(r0 + q0);
  const bool block_corrupt = !last && corruption_needs_uniform(m.corruption);
  // The buffers are kept by the thread.
  thread_local std::vector<float> scratch;
  thread_local BlockUniforms sample_u, corrupt_u;
  if (scratch.size() < static_cast<size_t>(w)) scratch.resize(w);
  if (R == Reconstruction::Bernoulli)
    sample_u.draw(c.key, chain0, rows, step, kStreamSample, d0, w);
  if (block_corrupt) corrupt_u.draw(c.key, chain0, rows, step + 1, kStreamCorrupt, d0, w);
  for (int64_t q = q0; q < q1; ++q) {
    const int64_t r = r0 + q;
    const uint32_t chain = a.first_chain + static_cast<uint32_t>(r);
    T* xr = c.x + r * D + d0;
    T* orow = c.o + r * D + d0;
    const float* drawn = scratch.data();
    if (R == Reconstruction::Bernoulli)
      drawn = sample_u.row(q - q0);
    else
      normal_row(c.key, chain, step, kStreamSample, d0, w, scratch.data());
    const uint8_t* cr = a.clamp ? a.clamp + (a.clamp_per_chain ? r * D : 0) + d0 : nullptr;
    sample_row<T, R>(xr, orow, m.b0 + d0, cr, m.sigma, drawn, w);
    if (rec) {
      const T* src = a.record_means ? orow : xr;
      std::copy(src, src + w, rec + r * D + d0);
    }
    if (last && c.means) std::copy(orow, orow + w, c.means + r * D + d0);
    if (!block_corrupt && !last)
      corrupt_row<T>(m.corruption, m.corruption_param, xr, c.xt + r * D + d0, d0, w, c.key,
                     chain, step + 1, scratch.data());
  }
  // The block's corruption after all its samples, not row by row right behind each: reading
  // a row just written stalled on its stores (`perf`: 70% of corrupt_loop's samples on the
  // first use of the load).
  if (block_corrupt)
    for (int64_t q = q0; q < q1; ++q)
      corrupt_drawn<T>(m.corruption, m.corruption_param, c.x + (r0 + q) * D + d0,
                       c.xt + (r0 + q) * D + d0, w, corrupt_u.row(q - q0));
}

// The record slab of step s of the call (nullptr when it records nothing).
template <class T>
T* record_slab(const ChainArgs& a, int64_t s, int64_t D, T* records) {
  const int64_t past = s + 1 - a.burn_in;
  if (a.every > 0 && past > 0 && past % a.every == 0 && records)
    return records + (past / a.every - 1) * a.chains * D;
  return nullptr;
}

}  // namespace
}  // namespace wb
