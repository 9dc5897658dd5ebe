// Kernels shared by the GPU chain and walk-back training: thin loops over the per-element
// maths of walkback/elementwise.h. One thread handles the 4 units of one Philox block.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "cuda/context.h"
#include "walkback/elementwise.h"
#include "walkback/rng.h"

namespace wb::cuda {

constexpr int kEpilogueThreads = 128;

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

// h = act(h + b) over a (rows x cols) row-major array: blockIdx.y walks the rows, so no
// thread divides to find its column. With `counter`, one thread also adds 1 to it: the
// chain's step counter, read by the epilogue that runs after this kernel.
template <class T>
__global__ void bias_activate_kernel(T* h, const T* b, int64_t rows, int64_t cols,
                                     Activation act, uint32_t* counter) {
  if (counter && blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *counter += 1u;
  const int64_t j = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (j >= cols) return;
  const T bj = b[j];
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y)
    h[r * cols + j] = activate<T>(act, h[r * cols + j] + bj);
}

// g *= act'(h), h the activation's output.
template <class T>
__global__ void mul_activation_grad_kernel(T* g, const T* h, int64_t n, Activation act) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    g[i] *= activation_grad_from_output<T>(act, h[i]);
}

template <class T>
void launch_bias_activate(T* h, const T* b, int64_t rows, int64_t cols, Activation act,
                          uint32_t* counter, cudaStream_t s) {
  const dim3 grid(blocks_for(cols, 256), unsigned(rows < 65535 ? rows : 65535));
  bias_activate_kernel<T><<<grid, 256, 0, s>>>(h, b, rows, cols, act, counter);
  check(cudaGetLastError(), "bias_activate kernel launch");
}

}  // namespace wb::cuda
