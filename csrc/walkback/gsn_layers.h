// The layer updates of a GSN chain step on the CPU, shared by sampling (gsn_chain) and training
// (gsn_train): a hidden layer from its neighbours with its noise, and the visible layer's
// pre-activation.
#pragma once
#include <cstdint>

#include "walkback/gsn_model.h"
#include "walkback/rng.h"

namespace wb {

// h = act(below W_l + above D_{l+1} + b_l + s_pre n_pre) + s_post n_post for B rows (chains
// first_chain..), noise from the layer's streams at `step`; a null below/above is a zero
// layer. y gets act(.) (the backward pass needs it). below: (B, n[l-1]), above: (B, n[l+1]).
template <class T>
void gsn_update_hidden(const GsnModel<T>& m, int l, int64_t B, StreamKey key, uint32_t step,
                       uint32_t first_chain, const T* below, const T* above, T* h, T* y);

// o = h1 D_1 (without b_0): (B, D).
template <class T>
void gsn_decode(const GsnModel<T>& m, int64_t B, const T* h1, T* o);

// grad_h = ga_below D_l^T + ga_above W_{l+1}^T, then grad_a = grad_h * act'(y) written to ga:
// the backward of gsn_update_hidden for layer l given the pre-activation gradients of the
// layers that read h_l (either may be null: no such reader).
template <class T>
void gsn_backward_hidden(const GsnModel<T>& m, int l, int64_t B, const T* ga_below,
                         const T* ga_above, const T* y, T* ga);

}  // namespace wb
