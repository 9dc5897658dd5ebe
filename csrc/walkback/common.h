// Shared definitions of the walkback core: the host/device macro and the codes that name a
// corruption, an activation, a reconstruction and a random stream. No Python, no CUDA runtime.
#pragma once
#include <cstdint>

// Always inlined, on the host too: the per-element maths must inline into the loops that
// vectorize over it. Left to GCC's heuristics, fast_expf stopped being inlined into the
// chain's sampling loops in an experiment that only grew dae_chain.cpp (a std::stable_sort
// instantiated per parallel_columns caller): a scalar call per unit made the chain 2.5x slower.
#if defined(__CUDACC__)
#define WB_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define WB_HD inline __attribute__((always_inline))
#else
#define WB_HD inline
#endif

namespace wb {

// Codes shared by the C++ core, the CUDA kernels and the Python layer (walkback/_codes.py).
enum class Corruption : int { None = 0, SaltAndPepper = 1, Masking = 2, Gaussian = 3, BitFlip = 4 };
// LeakyRelu has slope 0.05 below zero, as the diffusion paper's code (Sohl-Dickstein et al.).
enum class Activation : int { Sigmoid = 0, Tanh = 1, Relu = 2, Identity = 3, LeakyRelu = 4 };
// Categorical is a GSN visible segment's softmax over k units (a row-level distribution, so
// it has no per-unit sampler and the DAE kernels do not take it).
enum class Reconstruction : int { Bernoulli = 0, Gaussian = 1, Categorical = 2 };

// The purpose of a uniform: the fourth Philox counter word, so that the corruption and the
// sampling of one unit at one step never reuse a number. GSN hidden-noise streams start at
// kStreamHidden and take two per layer (pre, post).
// GSN visible segments draw their normals from streams of their own (a normal takes two
// uniforms of a Philox block, so a segment starting mid-block would otherwise share numbers
// with its neighbour's uniforms).
enum Stream : uint32_t {
  kStreamCorrupt = 0,
  kStreamSample = 1,
  kStreamInit = 2,
  kStreamUser = 3,
  kStreamCorruptNormal = 4,
  kStreamSampleNormal = 5,
  kStreamHidden = 16,
};

}  // namespace wb
