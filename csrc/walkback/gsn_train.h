// Walk-back training of a GSN on the CPU (Bengio et al. 2014): from each data point run k chain
// steps, adding the weighted NLL of the clean data under every step's visible reconstruction
// (or the last only). Visible samples are constants; the hidden noise is reparametrized, so the
// gradient flows back through the hidden states across steps (backprop through the unrolled
// chain). The per-step propagation runs step by step; every weight gradient is then one GEMM
// over all the steps' stacked rows.
#pragma once
#include <cstdint>

#include "walkback/dae_train.h"
#include "walkback/gsn_model.h"

namespace wb {

// clamp: (D) nonzero = the unit stays at the data value through the walk (a discriminant GSN's
// input), or null. Returns the loss; grads == nullptr runs the forward only.
template <class T>
double gsn_walkback(const GsnModel<T>& m, const WalkbackArgs& a, const T* x, const uint8_t* clamp,
                    GsnGrads<T>* grads);

}  // namespace wb
