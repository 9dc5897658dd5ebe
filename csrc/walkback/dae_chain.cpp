#include "walkback/dae_chain.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "walkback/dae_chain_rows.h"
#include "walkback/dispatch.h"
#include "walkback/elementwise.h"
#include "walkback/parallel_gemm.h"
#include "walkback/random_ops.h"
#include "walkback/row_kernels.h"
#include "walkback/weight_rows.h"
#include "walkback/workspace.h"

namespace wb {
namespace {

// The B = 1 encoder of untied models (tied ones take dae_chain_one): h = b1 + the sum of the
// rows of W whose corrupted input is nonzero, each times its value; with binary inputs that
// reads a fraction of W (and it writes act(h) in place).
template <class T, Activation A>
void encode_sparse_slice(const DaeModel<T>& m, const T* xt, T* h, const std::vector<int32_t>& on,
                         int64_t j0, int64_t j1) {
  T* hj = h + j0;
  const int64_t n = j1 - j0;
  for (int64_t j = 0; j < n; ++j) hj[j] = T(0);
  constexpr int64_t kBatch = 64;
  const T* rows[kBatch];
  T vals[kBatch];
  for (size_t i = 0; i < on.size(); i += kBatch) {
    const int64_t count = std::min<int64_t>(kBatch, static_cast<int64_t>(on.size() - i));
    for (int64_t r = 0; r < count; ++r) {
      rows[r] = m.W + on[i + r] * m.H + j0;
      vals[r] = xt[on[i + r]];
    }
    accumulate_rows<T>(hj, rows, vals, count, n);
  }
  bias_activate<T, A>(hj, m.b1 + j0, n);
}

// dae_chain's state buffers, kept per thread between calls (workspace.h): every element is
// written before it is read, so a call of a few steps does not zero megabytes first.
template <class T>
struct ChainWork {
  std::vector<T> xt, h, o;
  size_t bytes() const { return total_bytes(xt, h, o); }
};

}  // namespace

void pack_dae_weights(const DaeModel<float>& m, PackedWeights& enc, PackedWeights& dec) {
  enc.pack(m.W, m.H, false, m.D, m.H);
  if (m.U)
    dec.pack(m.U, m.D, false, m.H, m.D);
  else
    dec.pack(m.W, m.H, true, m.H, m.D);
}

template <class T>
void dae_chain(const DaeModel<T>& m, const ChainArgs& a, T* x, T* records, T* means) {
  const int64_t B = a.chains, D = m.D, H = m.H;
  if (B == 1 && !m.U) return dae_chain_one(m, a, x, records, means);
  const StreamKey key = stream_key(a.seed);
  const int64_t total = a.burn_in + a.steps;
  KeptWorkspace<ChainWork<T>> work;
  std::vector<T>&xt = work->xt, &h = work->h, &o = work->o;
  xt.resize(B * D);
  h.resize(B * H);
  o.resize(B * D);
  const ChainState<T> state{m, a, key, x, xt.data(), o.data(), means};
  // Slices of the visible units are whole Philox blocks; 16 keeps SIMD stores aligned.
  constexpr int64_t kAlign = 16;
  // The threads split the chains (below) from kSplitRows chains per thread, in chunks of
  // about kChunkRows. Measured (benchmarks/RESULTS.md, B = 64-1024): at 64 per thread the
  // same as column slices; chunks of 256 beat 128 and 512.
  constexpr int64_t kSplitRows = 128, kChunkRows = 256;

  corrupt_batch<T>(m.corruption, m.corruption_param, x, xt.data(), B, D, a.seed, a.first_step,
                   a.first_chain);
  // Many chains: W (and U) packed once for walkback's own GEMM, used by every step of the call.
  KeptWorkspace<PackedLayer> packed;
  PackedWeights &enc = packed->forward, &dec = packed->backward;
  enc.clear();
  dec.clear();
  if constexpr (std::is_same_v<T, float>) {
    if (packed_chain_pays(B, total))
      pack_dae_weights(m, enc, dec);
  }
  // Each step over rows [r0, r1). `split` (the rows of one thread, walkback's kernel): its
  // products run on the calling thread; otherwise every product is cut into column slices
  // over the pool, with a wait at the end of each.
  std::vector<int32_t> on;
  // C (rows x w.n()) = A op(B) by the pack w on the calling thread (a thread's own chains when
  // the threads split them), epi on each block of C once it is final. Only packed (float)
  // weights split the chains.
  auto product_here = [](int64_t rows, const T* a_, int64_t lda, const PackedWeights& w, T* c,
                         int64_t ldc, auto& epi) {
    if constexpr (std::is_same_v<T, float>) {
      const BlockDone done = BlockDone::of(epi);
      packed_gemm(rows, a_, lda, w, c, ldc, 0, w.n(), false, &done);
    } else {
      throw std::logic_error("dae_chain: only packed (float) weights split the chains");
    }
  };
  auto run_step = [&](int64_t s, int64_t r0, int64_t r1, bool split) {
    const int64_t n = r1 - r0;
    T* xt_r = xt.data() + r0 * D;
    T* h_r = h.data() + r0 * H;
    T* o_r = o.data() + r0 * D;
    const uint32_t step = a.first_step + static_cast<uint32_t>(s);
    // Encode: h = act(x~ W + b1), on slices of the hidden units (all of them for a thread's
    // own chains when split).
    bool sparse = false;
    if (B == 1) {  // untied (tied: dae_chain_one)
      // Branch-free: about half the units are on, so a branch per unit mispredicted half the
      // time (measured: this loop was most of the step's serial part).
      on.resize(D);
      int64_t count = 0;
      for (int64_t d = 0; d < D; ++d) {
        on[count] = static_cast<int32_t>(d);
        count += xt[d] != T(0) ? 1 : 0;
      }
      on.resize(count);
      // Measured (B = 1, D = 784, when tied models took this path too): the row sum reads only
      // the rows it adds and runs as fast as the BLAS GEMV per row read, so it wins up to
      // nearly dense inputs (at half the units on: 8-25% faster per step; at 90%: the same).
      sparse = 8 * static_cast<int64_t>(on.size()) <= 7 * D;
    }
    with_activation(m.activation, [&](auto act) {
      constexpr Activation A = decltype(act)::value;
      if (sparse) {
        // Each unit's sum is the same for any cut: every thread may take a slice.
        parallel_columns(H, kAlign, 128, 1, [&](int64_t j0, int64_t j1) {
          encode_sparse_slice<T, A>(m, xt_r, h_r, on, j0, j1);
        }, false);
        return;
      }
      auto activate = [&](int64_t q0, int64_t q1, int64_t j0, int64_t j1) {
        for (int64_t r = q0; r < q1; ++r)
          bias_activate<T, A>(h_r + r * H + j0, m.b1 + j0, j1 - j0);
      };
      if (split) return product_here(n, xt_r, D, enc, h_r, H, activate);
      weight_gemm_columns<T>(&enc, false, n, H, D, xt_r, D, m.W, H, h_r, H, kAlign, activate);
    });
    // Decode o = h W^T (tied) or h U, then per slice of visible units: sample, keep the clamped
    // units, record, and corrupt for the next step (dae_chain_rows.h).
    const bool last = s + 1 == total;
    T* rec = record_slab(a, s, D, records);
    with_reconstruction(m.reconstruction, [&](auto rc) {
      constexpr Reconstruction R = decltype(rc)::value;
      // A few rows after walkback's kernel, every row of a slice after the BLAS's product.
      auto epilogue = [&](int64_t q0, int64_t q1, int64_t d0, int64_t d1) {
        for (int64_t q = q0; q < q1; q += kDrawRows)
          finish_chain_rows<T, R>(state, step, last, rec, r0, q, std::min(q + kDrawRows, q1), d0,
                                  d1);
      };
      if (split) return product_here(n, h_r, H, dec, o_r, D, epilogue);
      if (m.U)
        weight_gemm_columns<T>(&dec, false, n, D, H, h_r, H, m.U, D, o_r, D, kAlign, epilogue);
      else
        weight_gemm_columns<T>(&dec, true, n, D, H, h_r, H, m.W, H, o_r, D, kAlign, epilogue);
    });
  };
  // Many chains through walkback's kernel: the threads split the chains, and each takes its
  // chains through every step with no wait between products (chains are independent, and the
  // kernel gives each element the same bits for any cut of the rows). A few hundred rows per
  // thread still reuse each panel of W from L2 (every thread reads all of W per step, from L3).
  // Fewer chains keep column slices: each thread then reads only its part of W.
  const int64_t threads = pool().size();
  if (!enc.empty() && B >= kSplitRows * threads && threads > 1) {
    // Chunks of whole 12-row tiles of the AVX-512 kernel, about kChunkRows each, a multiple of
    // the thread count; taken dynamically, so a thread whose core is shared takes fewer.
    const int64_t chunks = threads * ((B + kChunkRows * threads - 1) / (kChunkRows * threads));
    const int64_t tiles = (B + 11) / 12;
    std::atomic<int64_t> next{0};
    pool().parallel_for(threads, [&](int64_t, int64_t) {
      for (int64_t c = next.fetch_add(1); c < chunks; c = next.fetch_add(1)) {
        const int64_t r0 = std::min(B, tiles * c / chunks * 12);
        const int64_t r1 = std::min(B, tiles * (c + 1) / chunks * 12);
        if (r1 > r0)
          for (int64_t s = 0; s < total; ++s) run_step(s, r0, r1, true);
      }
    });
    return;
  }
  for (int64_t s = 0; s < total; ++s) run_step(s, 0, B, false);
}
template void dae_chain<float>(const DaeModel<float>&, const ChainArgs&, float*, float*, float*);
template void dae_chain<double>(const DaeModel<double>&, const ChainArgs&, double*, double*,
                                double*);

}  // namespace wb
