// Per-device state of the CUDA backend: the cuBLAS handle, a private stream for capturing
// CUDA graphs, and scratch buffers that kernels and captured graphs reuse between calls.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda/cublas_runtime.h"

namespace wb::cuda {

void check(cudaError_t e, const char* what);

// Scratch buffers, named by slot; grow-only, so a pointer stays valid (and a captured graph
// stays usable) until a larger request reallocates it.
enum Slot : int {
  kXt = 0, kH, kO, kDo, kDa, kPartial, kOnes, kLoss, kDyn, kGram, kRunMax, kRunSum, kWt, kFlags,
  kSlots
};

struct Graph;  // a captured CUDA graph and the key it was captured for (dae_chain.cu)

struct Context {
  int device = -1;
  int sm_count = 1;  // the device's multiprocessors: sizes the grids of reducing kernels
  CublasHandle blas = nullptr;
  cudaStream_t capture = nullptr;  // graphs are captured here, replayed on the caller's stream
  void* workspace = nullptr;       // cuBLAS's, set explicitly so graph capture allocates nothing
  void* slot[kSlots] = {};
  size_t slot_bytes[kSlots] = {};
  size_t ones_filled = 0;          // kOnes holds this many ones (of the last dtype filled)
  int ones_dtype = 0;
  cudaEvent_t done = nullptr;      // recorded at the end of every call
  // A driver's data check, read back without stalling the stream: the check's flags are copied
  // into `host_flags` (pinned) and `checked` recorded; the driver queues its real work behind
  // them and only then waits for `checked` (while still holding the Context).
  uint32_t* host_flags = nullptr;
  cudaEvent_t checked = nullptr;
  cudaStream_t last_stream = nullptr;
  bool used = false;
  Graph* chain_graph = nullptr;
  std::mutex calls;  // held by each driver call (ContextCall): host threads take turns
  // A second lane of work that runs beside the caller's stream (made on first use by
  // ensure_side_lane()): its own stream for eager work, its own capture stream for graph
  // branches, and its own cuBLAS handle and workspace, since two GEMMs that run at once must not
  // share a workspace.
  CublasHandle side_blas = nullptr;
  void* side_workspace = nullptr;
  cudaStream_t side_stream = nullptr;
  cudaStream_t side_capture = nullptr;
  cudaEvent_t fork_event = nullptr, join_event = nullptr;

  // The buffer of `slot` with at least `bytes` bytes.
  void* scratch(Slot s, size_t bytes);
  // Called first by every driver: orders this call after the previous one (which may have
  // run on another stream: the scratch buffers are shared) and points cuBLAS at `stream`.
  void enter(cudaStream_t stream);
  // Called last: records the event the next call waits for.
  void leave(cudaStream_t stream);
  // Creates the side lane's resources once (never during a graph capture); on failure nothing
  // of it is kept.
  void ensure_side_lane();
  // `side` (or `main`) waits for the work queued on `main` (or `side`) so far.
  void fork_to(cudaStream_t side, cudaStream_t main);
  void join_to(cudaStream_t main, cudaStream_t side);
  // Point the main (or the side lane's) cuBLAS handle at `stream`, with its own workspace:
  // cublasSetStream resets a handle to cuBLAS's default workspace pool.
  void use_main(cudaStream_t stream);
  void use_side(cudaStream_t stream);
};

// The side lane forked off `main` for a scope (when `active`): the side stream (the lane's
// capture stream when `capture`, else its eager one; side() names it, once the lane exists)
// runs after what `main` had queued, and join() makes `main` wait for what it queued since.
// When an exception leaves the scope first, the destructor joins anyway (ignoring errors: one
// is on its way), so later work on `main` (and, through ContextCall's event, on any stream)
// never overtakes side-lane work on the shared buffers. A SideFork lives inside a ContextCall.
class SideFork {
 public:
  SideFork(Context& ctx, cudaStream_t main, bool active, bool capture = false);
  SideFork(const SideFork&) = delete;
  SideFork& operator=(const SideFork&) = delete;
  cudaStream_t side() const { return side_; }
  void join();
  ~SideFork();

 private:
  Context& ctx_;
  cudaStream_t main_, side_ = nullptr;
  bool open_;
};

// The context of the current CUDA device (cudaGetDevice), created on first use.
Context& context();

// One driver call's hold on the current device's Context. Host threads take turns (the
// scratch buffers, cuBLAS handles, events and graphs are shared, and Python releases the GIL
// around these calls); the call is ordered after the previous one (Context::enter); and however
// it ends, the event the next call waits for is recorded: by finish(), or by the destructor
// when an exception leaves first.
class ContextCall {
 public:
  explicit ContextCall(cudaStream_t stream);
  ContextCall(const ContextCall&) = delete;
  ContextCall& operator=(const ContextCall&) = delete;
  // Context::leave, with its errors reported.
  void finish();
  ~ContextCall();

  Context& ctx;

 private:
  std::unique_lock<std::mutex> lock_;
  cudaStream_t stream_;
  bool finished_ = false;
};

// Row-major GEMM through cuBLAS: C (m x n) = alpha op(A) op(B) + beta C, where op(A) is m x k
// (A stored k x m when trans_a) and op(B) is k x n (B stored n x k when trans_b).
template <class T>
void gemm(Context& ctx, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha,
          const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c, int64_t ldc);
// The same through `handle` (the side lane's, say), on whatever stream it is set to.
template <class T>
void gemm_on(CublasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
             T alpha, const T* a, int64_t lda, const T* b, int64_t ldb, T beta, T* c,
             int64_t ldc);

// y (cols) = (column sums of the row-major rows x cols matrix A) + beta * y, on `stream`
// through `handle` (which must be set to `stream`).
template <class T>
void column_sums(Context& ctx, CublasHandle handle, const T* a, int64_t rows, int64_t cols, T* y,
                 T beta, cudaStream_t stream);

// Kernel launch geometry: blocks of `threads` covering n items, capped (grid-stride loops).
inline unsigned blocks_for(int64_t n, int threads, int64_t cap = 65535) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > cap ? cap : b));
}

}  // namespace wb::cuda
