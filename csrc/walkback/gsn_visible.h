// The visible layer of a GSN, one row (chain) at a time, segment by segment: corruption,
// reconstruction NLL with its gradient, and sampling with clamped units kept.
#pragma once
#include <cstdint>
#include <vector>

#include "walkback/gsn_model.h"
#include "walkback/rng.h"

namespace wb {

// Per-thread scratch for the row functions, allocated once per call and thread: the stream's
// numbers of a row, a zero bias, and per-unit NLLs and a gradient sink for forward-only calls.
template <class T>
struct VisibleScratch {
  std::vector<float> u;
  std::vector<T> zeros, nll, sink;
  explicit VisibleScratch(int64_t D) : u(D + 4), zeros(D, T(0)), nll(D), sink(D) {}
};

// xt = C(x) segment by segment, with the corruption stream of `chain` at `step`; a unit's
// random number is the same as in a one-segment model (the stream is indexed by unit).
template <class T>
void gsn_corrupt_row(const std::vector<VisibleSegment>& segs, const T* x, T* xt, StreamKey key,
                     uint32_t chain, uint32_t step, VisibleScratch<T>& s);

// o += b0, then returns the weighted NLL of the clean target under each segment's
// reconstruction; d_o (when not null) gets scale * weight * d NLL / d o.
template <class T>
double gsn_nll_grad_row(const std::vector<VisibleSegment>& segs, T* o, const T* b0,
                        const T* target, T* d_o, T scale, VisibleScratch<T>& s);

// From o (with b0 added): o becomes each segment's mean, x a sample of the free units (clamped
// units keep their value; a categorical segment is clamped as a whole by its first unit).
template <class T>
void gsn_sample_row(const std::vector<VisibleSegment>& segs, T* o, T* x, const uint8_t* clamp,
                    StreamKey key, uint32_t chain, uint32_t step, VisibleScratch<T>& s);

}  // namespace wb
