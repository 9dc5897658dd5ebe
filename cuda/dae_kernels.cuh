// Kernels shared by the GPU chain and walk-back training: thin loops over the per-element
// maths of walkback/elementwise.h. One thread handles the 4 units of one Philox block
// (cuda/quads.cuh).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/context.h"
#include "cuda/quads.cuh"
#include "walkback/elementwise.h"
#include "walkback/rng.h"

namespace wb::cuda {

constexpr int kEpilogueThreads = 256;

// Grid-stride loops over the groups of a batch.
#define WB_FOR_EACH_GROUP(q, t)                                                  \
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < (q).total; \
       t += int64_t(gridDim.x) * blockDim.x)

inline unsigned group_blocks(const Quads& q, int threads) {
  return blocks_for(q.total, threads, int64_t(1) << 20);
}

// The 4 numbers (uniforms, or normals when `normal`) of Philox block `group`.
__device__ __forceinline__ void stream_numbers(StreamKey key, uint32_t group, uint32_t chain,
                                               uint32_t step, uint32_t stream, bool normal,
                                               float r[4]) {
  const Philox4 b = stream_block(key, group, chain, step, stream);
  if (normal) {
    normals_of_block(b, r);
  } else {
    for (int l = 0; l < 4; ++l) r[l] = u01(b.v[l]);
  }
}

// h = act(h + b) over a (rows x cols) row-major array, by groups of 4 columns. With
// `counter`, one thread also adds 1 to it: the chain's step counter, read by the epilogue
// that runs after this kernel.
template <class T>
__global__ void bias_activate_kernel(T* h, const T* b, Quads q, Activation act,
                                     uint32_t* counter) {
  if (counter && blockIdx.x == 0 && threadIdx.x == 0) *counter += 1u;
  WB_FOR_EACH_GROUP(q, t) {
    int64_t r, g;
    q.split(t, r, g);
    const int n = q.count(g);
    T hv[4], bv[4];
    load4(h + r * q.units + 4 * g, n, q.vec, hv);
    load4(b + 4 * g, n, q.vec, bv);
    for (int l = 0; l < 4; ++l) hv[l] = activate<T>(act, hv[l] + bv[l]);
    store4(h + r * q.units + 4 * g, n, q.vec, hv);
  }
}

// g *= act'(h), h the activation's output, over n elements (one row of n units).
template <class T>
__global__ void mul_activation_grad_kernel(T* g, const T* h, Quads q, Activation act) {
  WB_FOR_EACH_GROUP(q, t) {
    const int n = q.count(t);
    T gv[4], hv[4];
    load4(g + 4 * t, n, q.vec, gv);
    load4(h + 4 * t, n, q.vec, hv);
    for (int l = 0; l < 4; ++l) gv[l] *= activation_grad_from_output<T>(act, hv[l]);
    store4(g + 4 * t, n, q.vec, gv);
  }
}

template <class T>
void launch_bias_activate(T* h, const T* b, int64_t rows, int64_t cols, Activation act,
                          uint32_t* counter, cudaStream_t s) {
  const Quads q = make_quads(rows, cols, {h, b});
  bias_activate_kernel<T><<<group_blocks(q, 256), 256, 0, s>>>(h, b, q, act, counter);
  check(cudaGetLastError(), "bias_activate kernel launch");
}

template <class T>
void launch_mul_activation_grad(T* g, const T* h, int64_t n, Activation act, cudaStream_t s) {
  const Quads q = make_quads(1, n, {g, h});
  mul_activation_grad_kernel<T><<<group_blocks(q, 256), 256, 0, s>>>(g, h, q, act);
  check(cudaGetLastError(), "activation gradient kernel launch");
}

}  // namespace wb::cuda
