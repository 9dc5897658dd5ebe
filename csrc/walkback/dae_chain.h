// The DAE chain on the CPU: many steps of corrupt -> encode -> decode -> sample per call, the
// state kept in C++ between steps.
#pragma once
#include <cstdint>

#include "walkback/common.h"
#include "walkback/packed_gemm.h"

namespace wb {

template <class T>
struct DaeModel {
  const T* W = nullptr;   // (D, H) encoder weights
  const T* b1 = nullptr;  // (H) hidden bias
  const T* b0 = nullptr;  // (D) visible bias
  const T* U = nullptr;   // (H, D) decoder weights when untied; nullptr: decoder is W^T
  int64_t D = 0, H = 0;
  Activation activation = Activation::Sigmoid;
  Reconstruction reconstruction = Reconstruction::Bernoulli;
  T sigma = 1;  // Gaussian reconstruction's standard deviation
  Corruption corruption = Corruption::SaltAndPepper;
  T corruption_param = 0;
};

struct ChainArgs {
  int64_t chains = 0;       // B
  uint64_t seed = 0;
  uint32_t first_step = 0;  // the random stream's step index of the first step
  uint32_t first_chain = 0; // the random stream's chain index of row 0
  int64_t steps = 1;        // steps after burn-in
  int64_t burn_in = 0;
  int64_t every = 0;        // > 0: record after every `every` steps past burn-in
  const uint8_t* clamp = nullptr;  // nonzero = clamped; (B, D) or (D) rows
  bool clamp_per_chain = false;
  bool record_means = false;       // record (and return in `means`) p(x | h)'s mean, not samples
};

// x: (B, D) start state, overwritten with the final state. records: (steps / every, B, D) when
// every > 0. means: (B, D) mean of the last step, or nullptr.
template <class T>
void dae_chain(const DaeModel<T>& m, const ChainArgs& a, T* x, T* records, T* means);

// dae_chain for one chain (B = 1) with tied weights: one pass over W a step
// (dae_chain_one.cpp). dae_chain calls it; the bits do not depend on the thread count.
template <class T>
void dae_chain_one(const DaeModel<T>& m, const ChainArgs& a, T* x, T* records, T* means);

// The encoder's weights (W, D x H) into `enc` and the decoder's (W^T, or U when untied; H x D)
// into `dec`, for packed_gemm: one pass over them per orientation.
void pack_dae_weights(const DaeModel<float>& m, PackedWeights& enc, PackedWeights& dec);

}  // namespace wb
