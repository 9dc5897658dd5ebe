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

// A batch can run as two branches of rows: independent chains of kernels (two streams, or two
// branches of a CUDA graph), so that one branch's memory-bound kernels run while the other's
// compute-bound GEMMs do, instead of leaving the chip to one of them at a time. Rows keep their
// chain numbers, so the numbers drawn do not depend on the split. Measured on an H100
// (benchmarks/RESULTS.md, paired runs): at B = 4096 walk-back training gains 1-4% and the
// chain about 1% (faster in 8 of 9 runs; its second GEMM gets a slower cuBLAS kernel at half
// the rows, which eats most of the overlap); at B = 1024 training lost 23% (one run) and the
// chain 0-12% (three runs). So only the largest batches split by themselves.
constexpr int kMaxBranches = 2;
// Batches of at least this many rows run as two branches when the caller leaves it to us.
constexpr int64_t kBranchRows = 4096;

// The rows [row0, row0 + q.rows) of a batch; `index` picks the branch's own step counter.
struct Branch {
  int64_t row0;
  Quads q;
  int index;
};

// `requested`: 0 chooses (two branches from kBranchRows rows on, else one), 1 or 2 forces.
inline int pick_branches(int requested, int64_t rows) {
  int b = requested <= 0 ? (rows >= kBranchRows ? 2 : 1) : requested;
  if (b > kMaxBranches || rows < b) b = 1;
  return b;
}

// The batch's rows cut into `count` branches (the last takes the odd row). Row offsets are whole
// rows, so a branch keeps the batch's 16-byte alignment when its rows are groups of 4 units.
inline void split_branches(const Quads& whole, int count, Branch* out) {
  int64_t row0 = 0;
  for (int b = 0; b < count; ++b) {
    const int64_t rows = (whole.rows - row0) / (count - b);
    out[b].row0 = row0;
    out[b].index = b;
    out[b].q = whole;
    out[b].q.rows = rows;
    out[b].q.total = rows * whole.groups;
    out[b].q.narrow = out[b].q.total < (int64_t(1) << 32);
    row0 += rows;
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
