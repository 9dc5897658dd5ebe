// One chain with tied weights (B = 1): each step is one pass over W a block of visible units
// at a time. For a block, the decoder's dot products of its rows of W with h give its units'
// means; the units are sampled and corrupted for the next step; and the rows of those whose
// corrupted input is nonzero are added into the next step's encoder sum while they are still
// in cache. A step of the product form reads W about one and a half times (all of it for the
// decoder, the rows that are on for the encoder); this reads it once, and each thread reads
// only its own rows, in the opposite direction every other step, so the rows it read last are
// still in its L2 when the next step starts with them. Measured in a stand-alone copy of the
// two patterns (D = 784, two threads): 47 -> 38 us a step at H = 2000, 26 -> 18 at H = 1000.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "walkback/dae_chain.h"
#include "walkback/dae_chain_rows.h"
#include "walkback/dispatch.h"
#include "walkback/thread_pool.h"
#include "walkback/weight_rows.h"
#include "walkback/workspace.h"

namespace wb {
namespace {

// The encoder's sum is kept as kGroups partial sums, one per fixed group of visible units,
// added in order at the start of the next step. The groups do not depend on the thread
// count, so neither do the bits; each thread takes whole groups (two threads: four each).
constexpr int64_t kGroups = 8;
// Units decoded, sampled and added per block: a multiple of 16 (whole Philox blocks and SIMD
// vectors). Measured the same as 16 and 32 rows a block, with fewer calls.
constexpr int64_t kBlockUnits = 64;

template <class T>
struct OneChainWork {
  std::vector<T> xt, h, o, partial;
  size_t bytes() const { return total_bytes(xt, h, o, partial); }
};

}  // namespace

template <class T>
void dae_chain_one(const DaeModel<T>& m, const ChainArgs& a, T* x, T* records, T* means) {
  const int64_t D = m.D, H = m.H;
  const int64_t total = a.burn_in + a.steps;
  KeptWorkspace<OneChainWork<T>> work;
  std::vector<T>&xt = work->xt, &h = work->h, &o = work->o, &partial = work->partial;
  xt.resize(D);
  o.resize(D);
  const int64_t blocks16 = (D + 15) / 16;
  const int64_t groups = std::min(kGroups, blocks16);
  // The groups' sums and the threads' copies of h start on cache lines of their own: two
  // threads writing the two ends of one line would pass it back and forth every pass.
  const int64_t stride = (H + 15) / 16 * 16, pad = 64 / sizeof(T);
  auto line_start = [](T* p) {
    return reinterpret_cast<T*>((reinterpret_cast<uintptr_t>(p) + 63) & ~uintptr_t(63));
  };
  h.resize(groups * stride + pad);
  T* const hs = line_start(h.data());  // each thread's own copy of h, at its first group
  // Two sets of partial sums: step t reads set t % 2 (every thread, all groups) while its
  // pass makes set (t + 1) % 2, so no thread overwrites a sum another is still reading.
  partial.resize(2 * groups * stride + pad);
  T* const sets = line_start(partial.data());
  auto partials = [&](uint32_t t) { return sets + (t & 1u) * groups * stride; };
  const ChainState<T> state{m, a, stream_key(a.seed), x, xt.data(), o.data(), means};
  corrupt_batch<T>(m.corruption, m.corruption_param, x, xt.data(), 1, D, a.seed, a.first_step,
                   a.first_chain);

  // Group g: the units [first(g), first(g + 1)), whole blocks of 16.
  auto first = [&](int64_t g) { return std::min(D, blocks16 * g / groups * 16); };
  // The pass of global step t runs backwards (from the last unit) when t is odd. The encoder
  // sum of step t is made by the pass of step t - 1, so it adds the blocks in that order.
  auto backwards = [](uint32_t t) { return (t & 1u) != 0; };
  // For the units of group g in the direction of the pass: f(d0, d1) on each block.
  auto each_block = [&](int64_t g, bool back, auto&& f) {
    const int64_t u0 = first(g), u1 = first(g + 1);
    const int64_t nb = (u1 - u0 + kBlockUnits - 1) / kBlockUnits;
    for (int64_t i = 0; i < nb; ++i) {
      const int64_t b = back ? nb - 1 - i : i;
      f(u0 + b * kBlockUnits, std::min(u1, u0 + (b + 1) * kBlockUnits));
    }
  };
  // acc += the rows of W of the units in [d0, d1) whose corrupted input is nonzero, each times
  // its input, in order.
  auto add_rows = [&](int64_t d0, int64_t d1, T* acc) {
    const T* rows[kBlockUnits];
    T vals[kBlockUnits];
    int64_t count = 0;
    for (int64_t d = d0; d < d1; ++d) {  // branch-free: about half the units are on
      rows[count] = m.W + d * H;
      vals[count] = xt[d];
      count += xt[d] != T(0) ? 1 : 0;
    }
    accumulate_rows<T>(acc, rows, vals, count, H);
  };
  // A thread's groups [g0, g1) in the pass's direction. Each thread takes the same groups
  // every step (pool().parallel_for's contiguous slices).
  auto each_group = [](int64_t g0, int64_t g1, bool back, auto&& f) {
    for (int64_t i = 0; i < g1 - g0; ++i) f(back ? g1 - 1 - i : g0 + i);
  };

  // The first step's encoder sum, in the order of the pass before it.
  const bool back0 = backwards(a.first_step - 1u);
  pool().parallel_for(groups, [&](int64_t g0, int64_t g1) {
    each_group(g0, g1, back0, [&](int64_t g) {
      T* acc = partials(a.first_step) + g * stride;
      std::fill(acc, acc + H, T(0));
      each_block(g, back0, [&](int64_t d0, int64_t d1) { add_rows(d0, d1, acc); });
    });
  });
  with_activation(m.activation, [&](auto act) {
    constexpr Activation A = decltype(act)::value;
    with_reconstruction(m.reconstruction, [&](auto rc) {
      constexpr Reconstruction R = decltype(rc)::value;
      for (int64_t s = 0; s < total; ++s) {
        const uint32_t step = a.first_step + static_cast<uint32_t>(s);
        const bool last = s + 1 == total, back = backwards(step);
        T* rec = record_slab(a, s, D, records);
        pool().parallel_for(groups, [&](int64_t g0, int64_t g1) {
          // h = act(the partial sums in order + b1), whole, by every thread: one wait a step
          // (the partials must all be made first), not two.
          T* hl = hs + g0 * stride;
          const T* sums = partials(step);
          std::copy(sums, sums + H, hl);
          for (int64_t g = 1; g < groups; ++g) {
            const T* p = sums + g * stride;
            for (int64_t j = 0; j < H; ++j) hl[j] += p[j];
          }
          bias_activate<T, A>(hl, m.b1, H);
          each_group(g0, g1, back, [&](int64_t g) {
            T* acc = partials(step + 1u) + g * stride;
            if (!last) std::fill(acc, acc + H, T(0));
            each_block(g, back, [&](int64_t d0, int64_t d1) {
              row_dots<T>(m.W + d0 * H, H, d1 - d0, hl, H, o.data() + d0);
              finish_chain_rows<T, R>(state, step, last, rec, 0, 0, 1, d0, d1);
              if (!last) add_rows(d0, d1, acc);
            });
          });
        });
      }
    });
  });
}

template void dae_chain_one<float>(const DaeModel<float>&, const ChainArgs&, float*, float*,
                                   float*);
template void dae_chain_one<double>(const DaeModel<double>&, const ChainArgs&, double*, double*,
                                    double*);

}  // namespace wb
