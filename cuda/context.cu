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
  check(cudaDeviceGetAttribute(&ctx->sm_count, cudaDevAttrMultiProcessorCount, dev),
        "cudaDeviceGetAttribute");
  const Cublas& cb = cublas();
  check_cublas(cb.create(&ctx->blas), "cublasCreate");
  check(cudaStreamCreateWithFlags(&ctx->capture, cudaStreamNonBlocking), "cudaStreamCreate");
  check(cudaMalloc(&ctx->workspace, kWorkspaceBytes), "cudaMalloc (cuBLAS workspace)");
  check_cublas(cb.set_workspace(ctx->blas, ctx->workspace, kWorkspaceBytes),
               "cublasSetWorkspace");
  check(cudaEventCreateWithFlags(&ctx->done, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaEventCreateWithFlags(&ctx->checked, cudaEventDisableTiming), "cudaEventCreate");
  check(cudaMallocHost(reinterpret_cast<void**>(&ctx->host_flags), sizeof(uint32_t)),
        "cudaMallocHost");
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
  use_main(stream);
}

ContextCall::ContextCall(cudaStream_t stream)
    : ctx(context()), lock_(ctx.calls), stream_(stream) {
  ctx.enter(stream);
}

void ContextCall::finish() {
  ctx.leave(stream_);
  finished_ = true;
}

ContextCall::~ContextCall() {
  if (finished_) return;
  // An exception is on its way: order the next call after what this one queued anyway.
  cudaEventRecord(ctx.done, stream_);
  ctx.last_stream = stream_;
  ctx.used = true;
  cudaGetLastError();
}

void Context::use_main(cudaStream_t stream) {
  const Cublas& cb = cublas();
  check_cublas(cb.set_stream(blas, stream), "cublasSetStream");
  check_cublas(cb.set_workspace(blas, workspace, kWorkspaceBytes), "cublasSetWorkspace");
}

void Context::use_side(cudaStream_t stream) {
  const Cublas& cb = cublas();
  check_cublas(cb.set_stream(side_blas, stream), "cublasSetStream (side lane)");
  check_cublas(cb.set_workspace(side_blas, side_workspace, kWorkspaceBytes),
               "cublasSetWorkspace (side lane)");
}

void Context::leave(cudaStream_t stream) {
  check(cudaEventRecord(done, stream), "cudaEventRecord");
  last_stream = stream;
  used = true;
}

void Context::ensure_side_lane() {
  if (side_blas) return;
  const Cublas& cb = cublas();
  CublasHandle h = nullptr;
  cudaStream_t s = nullptr, sc = nullptr;
  cudaEvent_t f = nullptr, j = nullptr;
  void* w = nullptr;
  try {
    check_cublas(cb.create(&h), "cublasCreate (side lane)");
    check(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaStreamCreateWithFlags(&sc, cudaStreamNonBlocking), "cudaStreamCreate");
    check(cudaEventCreateWithFlags(&f, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaEventCreateWithFlags(&j, cudaEventDisableTiming), "cudaEventCreate");
    check(cudaMalloc(&w, kWorkspaceBytes), "cudaMalloc (side cuBLAS workspace)");
    check_cublas(cb.set_stream(h, s), "cublasSetStream (side lane)");
    check_cublas(cb.set_workspace(h, w, kWorkspaceBytes), "cublasSetWorkspace (side lane)");
    // One tiny GEMM now, so that cuBLAS's lazy set-up of the handle happens here rather than
    // inside a graph capture (its operands: the first bytes of the workspace, unused until
    // then).
    auto* x = static_cast<float*>(w);
    check(cudaMemsetAsync(x, 0, 4 * sizeof(float), s), "cudaMemsetAsync");
    gemm_on<float>(h, false, false, 1, 1, 1, 1.f, x, 1, x + 1, 1, 0.f, x + 2, 1);
    check(cudaStreamSynchronize(s), "cudaStreamSynchronize (side lane)");
  } catch (...) {
    if (w) cudaFree(w);
    if (j) cudaEventDestroy(j);
    if (f) cudaEventDestroy(f);
    if (sc) cudaStreamDestroy(sc);
    if (s) cudaStreamDestroy(s);
    if (h) cb.destroy(h);
    cudaGetLastError();
    throw;
  }
  side_stream = s;
  side_capture = sc;
  fork_event = f;
  join_event = j;
  side_workspace = w;
  side_blas = h;  // last: it marks the lane ready
}

void Context::fork_to(cudaStream_t side, cudaStream_t main) {
  check(cudaEventRecord(fork_event, main), "cudaEventRecord (fork)");
  check(cudaStreamWaitEvent(side, fork_event, 0), "cudaStreamWaitEvent (fork)");
}

void Context::join_to(cudaStream_t main, cudaStream_t side) {
  check(cudaEventRecord(join_event, side), "cudaEventRecord (join)");
  check(cudaStreamWaitEvent(main, join_event, 0), "cudaStreamWaitEvent (join)");
}

SideFork::SideFork(Context& ctx, cudaStream_t main, bool active, bool capture)
    : ctx_(ctx), main_(main), open_(false) {
  if (!active) return;
  ctx.ensure_side_lane();  // first: the lane's streams exist only from here on
  side_ = capture ? ctx.side_capture : ctx.side_stream;
  ctx.use_side(side_);
  ctx.fork_to(side_, main);
  open_ = true;
}

void SideFork::join() {
  if (!open_) return;
  open_ = false;
  ctx_.join_to(main_, side_);
}

SideFork::~SideFork() {
  if (!open_) return;
  cudaEventRecord(ctx_.join_event, side_);
  cudaStreamWaitEvent(main_, ctx_.join_event, 0);
  cudaGetLastError();  // a failure here must not be reported by some later, unrelated check
}

template <class T>
void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc) {
  gemm_on<T>(ctx.blas, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

template <class T>
void gemm_on(CublasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
             T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
             int64_t ldc) {
  if (m == 0 || n == 0) return;
  // Row-major C = op(A) op(B) is column-major C^T = op(B)^T op(A)^T: swap the operands.
  const int ta = trans_b ? 1 : 0, tb = trans_a ? 1 : 0;
  const Cublas& cb = cublas();
  int st;
  if constexpr (sizeof(T) == 4)
    st = cb.sgemm(handle, ta, tb, int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda),
                  &beta, c, int(ldc));
  else
    st = cb.dgemm(handle, ta, tb, int(n), int(m), int(k), &alpha, b, int(ldb), a, int(lda),
                  &beta, c, int(ldc));
  check_cublas(st, "cuBLAS gemm");
}

template <class T>
void column_sums(Context& ctx, CublasHandle handle, const T* a, int64_t rows, int64_t cols, T* y,
                 T beta, cudaStream_t stream) {
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
    st = cb.sgemv(handle, 0, int(cols), int(rows), &one, a, int(cols), ones, 1, &beta, y, 1);
  else
    st = cb.dgemv(handle, 0, int(cols), int(rows), &one, a, int(cols), ones, 1, &beta, y, 1);
  check_cublas(st, "cuBLAS gemv (column sums)");
}

template void gemm<float>(Context&, bool, bool, int64_t, int64_t, int64_t, float, const float*,
                          int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm<double>(Context&, bool, bool, int64_t, int64_t, int64_t, double,
                           const double*, int64_t, const double*, int64_t, double, double*,
                           int64_t);
template void gemm_on<float>(CublasHandle, bool, bool, int64_t, int64_t, int64_t, float,
                             const float*, int64_t, const float*, int64_t, float, float*, int64_t);
template void gemm_on<double>(CublasHandle, bool, bool, int64_t, int64_t, int64_t, double,
                              const double*, int64_t, const double*, int64_t, double, double*,
                              int64_t);
template void column_sums<float>(Context&, CublasHandle, const float*, int64_t, int64_t, float*,
                                 float, cudaStream_t);
template void column_sums<double>(Context&, CublasHandle, const double*, int64_t, int64_t,
                                  double*, double, cudaStream_t);

}  // namespace wb::cuda
