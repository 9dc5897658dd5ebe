#include "cuda/context.h"

#include <map>
#include <mutex>

namespace wb::cuda {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

namespace {

constexpr size_t kWorkspaceBytes = size_t(32) << 20;  // cuBLAS's advice for Hopper

std::mutex g_mutex;
std::map<int, Context*> g_contexts;

template <class T>
__global__ void fill_kernel(T* p, int64_t n, T v) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x)
    p[i] = v;
}

}  // namespace

Context& context() {
  int dev = 0;
  check(cudaGetDevice(&dev), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = g_contexts.find(dev);
  if (it != g_contexts.end()) return *it->second;
  auto* ctx = new Context();  // lives for the process: its handle outlives any caller
  ctx->device = dev;
  const Cublas& cb = cublas();
  check_cublas(cb.create(&ctx->blas), "cublasCreate");
  check(cudaStreamCreateWithFlags(&ctx->capture, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaMalloc(&ctx->workspace, kWorkspaceBytes), "cudaMalloc (cuBLAS workspace)");
  check_cublas(cb.set_workspace(ctx->blas, ctx->workspace, kWorkspaceBytes),
               "cublasSetWorkspace");
  check(cudaEventCreateWithFlags(&ctx->done, cudaEventDisableTiming), "cudaEventCreate");
  g_contexts[dev] = ctx;
  return *ctx;
}

void* Context::scratch(Slot s, size_t bytes) {
  if (bytes == 0) bytes = 16;
  if (slot_bytes[s] >= bytes) return slot[s];
  if (slot[s]) {
    // Work queued earlier may still read the old buffer: wait for it before freeing.
    check(cudaDeviceSynchronize(), "cudaDeviceSynchronize (scratch growth)");
    check(cudaFree(slot[s]), "cudaFree (scratch)");
  }
  bytes = bytes + bytes / 4;  // some headroom, so slowly growing batches do not reallocate
  slot[s] = nullptr;
  slot_bytes[s] = 0;
  check(cudaMalloc(&slot[s], bytes), "cudaMalloc (scratch)");
  slot_bytes[s] = bytes;
  if (s == kOnes) ones_filled = 0;
  return slot[s];
}

void Context::enter(cudaStream_t stream) {
  if (used && stream != last_stream)
    check(cudaStreamWaitEvent(stream, done, 0), "cudaStreamWaitEvent");
  check_cublas(cublas().set_stream(blas, stream), "cublasSetStream");
}

void Context::leave(cudaStream_t stream) {
  check(cudaEventRecord(done, stream), "cudaEventRecord");
  last_stream = stream;
  used = true;
}

template <class T>
void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  if (m == 0 || n == 0) return;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const int ta = trans_b ? 1 : 0, tb = trans_a ? 1 : 0;
  const Cublas& cb = cublas();
  int st;
  if constexpr (sizeof(T) == 4)
    st = cb.sgemm(ctx.blas, ta, tb, int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda),
                  &beta, c, int(ldc));
  else
    st = cb.dgemm(ctx.blas, ta, tb, int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda),
                  &beta, c, int(ldc));
  check_cublas(st, "cuBLAS gemm");
}

template <class T>
void column_sums(Context& ctx, const T* a, int64_t rows, int64_t cols, T* y, T beta,
                 cudaStream_t stream) {
  if (cols == 0) return;
  const int dt = int(sizeof(T));
  T* ones = static_cast<T*>(ctx.scratch(kOnes, size_t(rows) * sizeof(T)));
  if (ctx.ones_filled < size_t(rows) || ctx.ones_dtype != dt) {
    const int64_t n = int64_t(ctx.slot_bytes[kOnes] / sizeof(T));
    fill_kernel<T><<<blocks_for(n, 256, 1024), 256, 0, stream>>>(ones, n, T(1));
    check(cudaGetLastError(), "fill kernel launch");
    ctx.ones_filled = size_t(n);
    ctx.ones_dtype = dt;
  }
  // The row-major (rows x cols) A is the column-major (cols x rows) A^T: y = A^T 1.
  const T one = T(1);
  const Cublas& cb = cublas();
  int st;
  if constexpr (sizeof(T) == 4)
    st = cb.sgemv(ctx.blas, 0, int(cols), int(rows), &one, a, int(cols), ones, 1, &beta, y, 1);
  else
    st = cb.dgemv(ctx.blas, 0, int(cols), int(rows), &one, a, int(cols), ones, 1, &beta, y, 1);
  check_cublas(st, "cuBLAS gemv (column sums)");
}

template void gemm<float>(Context&, bool, bool, int64_t, int64_t, int64_t, float, const float*,
                          int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm<double>(Context&, bool, bool, int64_t, int64_t, int64_t, double,
                           const double*, int64_t, const double*, int64_t, double, double*,
                           int64_t);
template void column_sums<float>(Context&, const float*, int64_t, int64_t, float*, float,
                                 cudaStream_t);
template void column_sums<double>(Context&, const double*, int64_t, int64_t, double*, double,
                                  cudaStream_t);

}  // namespace wb::cuda
