// The GSN chain on the CPU: many steps per call, the visible and hidden states kept in C++.
#pragma once
#include <cstdint>

#include "walkback/dae_chain.h"
#include "walkback/gsn_model.h"

namespace wb {

// x: (B, D) visible start state, overwritten with the final one. hidden[l - 1]: (B, n[l]) the
// hidden layers' state, carried in and out (zeros start a chain as the original code does).
// records / means / clamp as for dae_chain; mean_sum (B, D), when not null, gets the sum of the
// visible means over the steps past burn-in (predict_proba averages it).
template <class T>
void gsn_chain(const GsnModel<T>& m, const ChainArgs& a, T* x, T* const* hidden, T* records,
               T* means, T* mean_sum);

}  // namespace wb
