// Walk-back training of a DAE on the CPU (Bengio et al. 2013, section 3.3): from each data point
// run k corrupt-encode-decode-sample steps and add the NLL of the *clean* data point under every
// step's reconstruction (or only the last). Visible samples are constants, so given them the k
// backward passes are independent and run as single GEMMs over k * B stacked rows.
#pragma once
#include <cstdint>

#include "walkback/dae_chain.h"

namespace wb {

struct WalkbackArgs {
  int64_t batch = 0;       // B
  int64_t walkbacks = 1;   // k
  uint64_t seed = 0;
  uint32_t first_chain = 0;
  bool last_only = false;  // count only the last step's reconstruction
};

// Gradients of the mean loss, same shapes as the parameters; U is ignored when tied.
template <class T>
struct DaeGrads {
  T* W = nullptr;
  T* b1 = nullptr;
  T* b0 = nullptr;
  T* U = nullptr;
};

// Returns the loss: the NLL summed over counted steps and units, averaged over the B examples.
// With grads == nullptr only the forward runs. x: (B, D) data, never modified.
template <class T>
double dae_walkback(const DaeModel<T>& m, const WalkbackArgs& a, const T* x, DaeGrads<T>* grads);

}  // namespace wb
