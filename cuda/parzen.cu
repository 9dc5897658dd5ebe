// The Parzen kernel on the GPU (walkback/parzen.cpp's gemm_logsumexp): for blocks of rows and
// centres, one cuBLAS GEMM for the cross terms, then one thread block per row merges the block
// into that row's running (max, sum of exp) in double, in a fixed order.
#include <cuda_runtime.h>

#include <cmath>

#include "cuda/context.h"
#include "cuda/dae.h"

namespace wb::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kRows = 4096, kCols = 8192;  // a 128 MB float32 block of cross terms

__device__ __forceinline__ void block_reduce(double* v, bool is_max) {
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w)
      v[threadIdx.x] = is_max ? fmax(v[threadIdx.x], v[threadIdx.x + w])
                              : v[threadIdx.x] + v[threadIdx.x + w];
    __syncthreads();
  }
}

template <class T>
__global__ void merge_block_kernel(const T* g, int64_t cols, T scale, const T* col_term,
                                   double* run_max, double* run_sum) {
  __shared__ double red[kThreads];
  const int64_t r = blockIdx.x;
  const T* row = g + r * cols;
  double m = -INFINITY;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    m = fmax(m, double(scale * row[c] + col_term[c]));
  red[threadIdx.x] = m;
  __syncthreads();
  block_reduce(red, true);
  const double bm = red[0];
  __syncthreads();
  if (!(bm > -INFINITY)) return;  // every term of this block is exp(-inf) = 0
  double s = 0.0;
  for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
    s += exp(double(scale * row[c] + col_term[c]) - bm);
  red[threadIdx.x] = s;
  __syncthreads();
  block_reduce(red, false);
  if (threadIdx.x == 0) {
    const double mx = fmax(run_max[r], bm);
    run_sum[r] = run_sum[r] * exp(run_max[r] - mx) + red[0] * exp(bm - mx);
    run_max[r] = mx;
  }
}

__global__ void init_kernel(double* run_max, double* run_sum, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    run_max[i] = -INFINITY;
    run_sum[i] = 0.0;
  }
}

__global__ void finish_kernel(const double* run_max, const double* run_sum,
                              const double* row_term, double* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    out[i] = row_term[i] + run_max[i] + log(run_sum[i]);
}

}  // namespace

template <class T>
void gemm_logsumexp(const T* a, int64_t M, const T* b, int64_t N, int64_t D, T scale,
                    const T* col_term, const double* row_term, double* out, cudaStream_t stream) {
  if (M == 0) return;
  ContextCall call(stream);
  Context& ctx = call.ctx;
  const int64_t rows_max = M < kRows ? M : kRows, cols_max = N < kCols ? N : kCols;
  T* g = static_cast<T*>(ctx.scratch(kGram, size_t(rows_max * cols_max) * sizeof(T)));
  auto* run_max = static_cast<double*>(ctx.scratch(kRunMax, size_t(rows_max) * 8));
  auto* run_sum = static_cast<double*>(ctx.scratch(kRunSum, size_t(rows_max) * 8));
  for (int64_t r0 = 0; r0 < M; r0 += kRows) {
    const int64_t rows = M - r0 < kRows ? M - r0 : kRows;
    init_kernel<<<blocks_for(rows, 256), 256, 0, stream>>>(run_max, run_sum, rows);
    check(cudaGetLastError(), "parzen init kernel launch");
    for (int64_t c0 = 0; c0 < N; c0 += kCols) {
      const int64_t cols = N - c0 < kCols ? N - c0 : kCols;
      gemm<T>(ctx, false, true, rows, cols, D, T(1), a + r0 * D, D, b + c0 * D, D, T(0), g,
              cols);
      merge_block_kernel<T><<<unsigned(rows), kThreads, 0, stream>>>(g, cols, scale,
                                                                     col_term + c0, run_max,
                                                                     run_sum);
      check(cudaGetLastError(), "parzen merge kernel launch");
    }
    finish_kernel<<<blocks_for(rows, 256), 256, 0, stream>>>(run_max, run_sum, row_term + r0,
                                                             out + r0, rows);
    check(cudaGetLastError(), "parzen finish kernel launch");
  }
  call.finish();
}

template void gemm_logsumexp<float>(const float*, int64_t, const float*, int64_t, int64_t, float,
                                    const float*, const double*, double*, cudaStream_t);
template void gemm_logsumexp<double>(const double*, int64_t, const double*, int64_t, int64_t,
                                     double, const double*, const double*, double*,
                                     cudaStream_t);

}  // namespace wb::cuda
