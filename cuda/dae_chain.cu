// The DAE chain on the GPU: per step two cuBLAS GEMMs, a bias + activation kernel and one
// epilogue kernel (sample, clamp, record, corrupt for the next step). Everything a step needs
// that changes from call to call (the state's address, the seed, the step counters, the
// records) lives in a small block of device memory, so one captured CUDA graph of G steps is
// replayed for any call with the same model and batch shape: a few chains cost one launch per
// G steps.
//
// When asked to, the batch runs as two branches of rows (dae_kernels.cuh): the graph then holds
// two chains of kernels with no edge between them, each with its own step counter.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstring>
#include <stdexcept>
#include <string>

#include "cuda/context.h"
#include "cuda/corrupt.h"
#include "cuda/dae.h"
#include "cuda/dae_kernels.cuh"

namespace wb::cuda {

// What a step reads at run time. `s[b]` is branch b's step index within the call: it starts at
// 0xFFFFFFFF and each step's bias + activation kernel adds one before the epilogue reads it.
struct ChainDyn {
  void* x;
  void* records;
  void* means;
  const uint8_t* clamp;
  uint64_t seed;
  int64_t burn_in, every, total;
  uint32_t first_step, first_chain;
  uint32_t s[kMaxBranches];
};

struct GraphKey {
  const void *W, *b1, *b0, *U, *xt, *h, *o, *dyn;
  int64_t B, D, H, steps;
  double sigma, corruption_param;
  int activation, reconstruction, corruption, dtype, clamp_per_chain, record_means, device, vec,
      branches;
};

struct Graph {
  GraphKey key;
  cudaGraphExec_t exec = nullptr;
};

namespace {

__global__ void set_dyn_kernel(ChainDyn* dyn, ChainDyn value) { *dyn = value; }

// kWAuto: whether a tied model multiplies by a copy of W^T for B chains. Measured on an H100
// (benchmarks/RESULTS.md, D = 784, H = 1000): the copy is faster at B = 16 and 256, slower at
// 4096 (cuBLAS's plain kernel for h W^T is slower there than its transposed-operand one), the
// same at B = 1.
inline bool chain_w_transposed(int64_t B) { return B >= 2 && B < 1024; }

// out (cols x rows) = in (rows x cols)^T, both row-major, by 32 x 32 tiles through shared
// memory so that reads and writes are both coalesced; blocks of 32 x 8 threads, the grid's y
// dimension strided (it is capped at 65535).
template <class T>
__global__ void transpose_kernel(const T* in, int64_t rows, int64_t cols, T* out) {
  __shared__ T tile[32][33];  // 33: a column of the tile falls in 32 different banks
  const int64_t c0 = int64_t(blockIdx.x) * 32;
  for (int64_t r0 = int64_t(blockIdx.y) * 32; r0 < rows; r0 += int64_t(gridDim.y) * 32) {
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
      const int64_t r = r0 + i, c = c0 + threadIdx.x;
      if (r < rows && c < cols) tile[i][threadIdx.x] = in[r * cols + c];
    }
    __syncthreads();
    for (int i = threadIdx.y; i < 32; i += blockDim.y) {
      const int64_t c = c0 + i, r = r0 + threadIdx.x;
      if (c < cols && r < rows) out[c * rows + r] = tile[threadIdx.x][i];
    }
    __syncthreads();
  }
}

template <class T>
void transpose(const T* in, int64_t rows, int64_t cols, T* out, cudaStream_t s) {
  const dim3 threads(32, 8);
  const dim3 blocks(blocks_for(cols, 32, 1 << 30), blocks_for(rows, 32));
  transpose_kernel<T><<<blocks, threads, 0, s>>>(in, rows, cols, out);
  check(cudaGetLastError(), "transpose kernel launch");
}

// o, xt: the branch's rows; the state, records and means are found through dyn (whole batch of
// `batch` rows) from row `row0` on. The state x is read only when a clamp mask is given and
// written only by the call's last step: between steps the chain lives in xt and the records, so
// a step moves two fewer arrays through memory.
template <class T>
__global__ void chain_epilogue_kernel(const T* o, const T* b0, T* xt, const ChainDyn* dyn,
                                      Quads q, int64_t row0, int64_t batch, int branch,
                                      Reconstruction R, T sigma, Corruption ck, T cp,
                                      bool clamp_per_chain, bool record_means) {
  const uint32_t s = dyn->s[branch];
  const StreamKey key = stream_key(dyn->seed);
  const uint32_t step = dyn->first_step + s;
  const bool last = int64_t(s) + 1 == dyn->total;
  const int64_t past = int64_t(s) + 1 - dyn->burn_in;
  const int64_t D = q.units;
  T* x = static_cast<T*>(dyn->x) + row0 * D;
  T* rec = nullptr;
  if (dyn->records && dyn->every > 0 && past > 0 && past % dyn->every == 0)
    rec = static_cast<T*>(dyn->records) + (past / dyn->every - 1) * batch * D + row0 * D;
  T* means = last && dyn->means ? static_cast<T*>(dyn->means) + row0 * D : nullptr;
  WB_FOR_EACH_GROUP(q, t) {
    int64_t c, g;
    q.split(t, c, g);
    const int n = q.count(g);
    const uint32_t chain = dyn->first_chain + static_cast<uint32_t>(row0 + c);
    float r[4], u[4] = {0.f, 0.f, 0.f, 0.f};
    stream_numbers(key, uint32_t(g), chain, step, kStreamSample,
                   R == Reconstruction::Gaussian, r);
    if (!last && ck != Corruption::None)
      stream_numbers(key, uint32_t(g), chain, step + 1, kStreamCorrupt,
                     corruption_needs_normal(ck), u);
    const int64_t at = c * D + 4 * g;
    T ov[4], bv[4], xv[4], w[4], xn[4], xc[4];
    load4(o + at, n, q.vec, ov);
    load4(b0 + 4 * g, n, q.vec, bv);
    const uint8_t* cl =
        dyn->clamp ? dyn->clamp + (clamp_per_chain ? (row0 + c) * D : 0) + 4 * g : nullptr;
    if (cl)
      load4(x + at, n, q.vec, xv);
    else
      xv[0] = xv[1] = xv[2] = xv[3] = T(0);
    for (int l = 0; l < 4; ++l) {
      const T mean = reconstruction_mean<T>(R, ov[l] + bv[l]);
      const T smp = reconstruction_sample<T>(R, mean, sigma, r[l], r[l]);
      const bool keep = cl && l < n && cl[l];
      w[l] = keep ? xv[l] : mean;
      xn[l] = keep ? xv[l] : smp;
      xc[l] = corrupt_value<T>(ck, cp, xn[l], u[l], u[l]);
    }
    if (last) store4(x + at, n, q.vec, xn);
    if (rec) {  // two calls, not one with `record_means ? w : xn`: a pointer chosen at run
                // time would put both arrays in local memory
      if (record_means)
        store4(rec + at, n, q.vec, w);
      else
        store4(rec + at, n, q.vec, xn);
    }
    if (means) store4(means + at, n, q.vec, w);
    if (!last) store4(xt + at, n, q.vec, xc);
  }
}

// n steps of one branch on stream s through cuBLAS handle `blas` (already set to s). xt, h and
// o are the whole batch's buffers; `batch` its row count.
template <class T>
void enqueue_steps(CublasHandle blas, const DaeModel<T>& m, const Branch& br, int64_t batch,
                   T* xt, T* h, T* o, ChainDyn* dyn, bool clamp_per_chain, bool record_means,
                   int64_t n, cudaStream_t s) {
  const int64_t B = br.q.rows, D = m.D, H = m.H;
  xt += br.row0 * D;
  h += br.row0 * H;
  o += br.row0 * D;
  uint32_t* counter = reinterpret_cast<uint32_t*>(reinterpret_cast<char*>(dyn) +
                                                  offsetof(ChainDyn, s)) +
                      br.index;
  for (int64_t k = 0; k < n; ++k) {
    gemm_on<T>(blas, false, false, B, H, D, T(1), xt, D, m.W, H, T(0), h, H);
    launch_bias_activate<T>(h, m.b1, B, H, m.activation, counter, s);
    if (m.U)
      gemm_on<T>(blas, false, false, B, D, H, T(1), h, H, m.U, D, T(0), o, D);
    else
      gemm_on<T>(blas, false, true, B, D, H, T(1), h, H, m.W, H, T(0), o, D);
    chain_epilogue_kernel<T>
        <<<group_blocks(br.q, kEpilogueThreads), kEpilogueThreads, 0, s>>>(
            o, m.b0, xt, dyn, br.q, br.row0, batch, br.index, m.reconstruction, m.sigma,
            m.corruption, m.corruption_param, clamp_per_chain, record_means);
    check(cudaGetLastError(), "chain epilogue kernel launch");
  }
}

// n steps of every branch: the first on `main` (the main cuBLAS handle set to it), the second
// on the side lane, forked off `main` and joined again (its capture stream when `capture`).
template <class T>
void enqueue_branches(Context& ctx, cudaStream_t main, bool capture, const DaeModel<T>& m,
                      const Quads& q, int branches, T* xt, T* h, T* o, ChainDyn* dyn,
                      bool clamp_per_chain, bool record_means, int64_t n) {
  Branch br[kMaxBranches];
  split_branches(q, branches, br);
  SideFork fork(ctx, main, branches > 1, capture);
  if (branches > 1)
    enqueue_steps<T>(ctx.side_blas, m, br[1], q.rows, xt, h, o, dyn, clamp_per_chain,
                     record_means, n, fork.side());
  enqueue_steps<T>(ctx.blas, m, br[0], q.rows, xt, h, o, dyn, clamp_per_chain, record_means, n,
                   main);
  fork.join();
}

template <class T>
cudaGraphExec_t chain_graph(Context& ctx, const DaeModel<T>& m, const Quads& q, int branches,
                            T* xt, T* h, T* o, ChainDyn* dyn, bool clamp_per_chain,
                            bool record_means, int64_t steps, cudaStream_t stream) {
  GraphKey key;
  std::memset(&key, 0, sizeof key);  // padding too: keys are compared bytewise
  key.W = m.W;
  key.b1 = m.b1;
  key.b0 = m.b0;
  key.U = m.U;
  key.xt = xt;
  key.h = h;
  key.o = o;
  key.dyn = dyn;
  key.B = q.rows;
  key.vec = q.vec;
  key.D = m.D;
  key.H = m.H;
  key.steps = steps;
  key.sigma = double(m.sigma);
  key.corruption_param = double(m.corruption_param);
  key.activation = int(m.activation);
  key.reconstruction = int(m.reconstruction);
  key.corruption = int(m.corruption);
  key.dtype = int(sizeof(T));
  key.clamp_per_chain = clamp_per_chain;
  key.record_means = record_means;
  key.device = ctx.device;
  key.branches = branches;
  Graph*& g = ctx.chain_graph;
  if (g && std::memcmp(&g->key, &key, sizeof key) == 0) return g->exec;
  if (g) {
    check(cudaGraphExecDestroy(g->exec), "cudaGraphExecDestroy");
    delete g;
    g = nullptr;
  }
  // Capture on the private stream (the caller's may be the legacy default stream, which
  // cannot be captured); the graph is then launched on the caller's stream.
  check(cudaStreamBeginCapture(ctx.capture, cudaStreamCaptureModeThreadLocal),
        "cudaStreamBeginCapture");
  cudaGraph_t graph = nullptr;
  try {
    ctx.use_main(ctx.capture);
    enqueue_branches<T>(ctx, ctx.capture, true, m, q, branches, xt, h, o, dyn, clamp_per_chain,
                        record_means, steps);
  } catch (...) {
    cudaStreamEndCapture(ctx.capture, &graph);
    if (graph) cudaGraphDestroy(graph);
    cudaGetLastError();  // the failed capture's error is the one on its way
    try {
      ctx.use_main(stream);
    } catch (...) {  // keep the first error
    }
    throw;
  }
  check(cudaStreamEndCapture(ctx.capture, &graph), "cudaStreamEndCapture");
  ctx.use_main(stream);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t e = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  check(e, "cudaGraphInstantiate");
  g = new Graph{key, exec};
  return exec;
}

}  // namespace

template <class T>
uint32_t dae_chain(const DaeModel<T>& m, const ChainArgs& a, T* x, T* records, T* means,
                   const ChainLaunch& how, cudaStream_t stream) {
  const int64_t B = a.chains, D = m.D, H = m.H, total = a.burn_in + a.steps;
  if (B == 0 || total == 0) return 0;
  if (how.w_layout < kWAuto || how.w_layout > kWTransposed)
    throw std::invalid_argument("dae_chain: w_layout must be 0 (automatic), 1 (as stored) or 2 "
                                "(transposed), not " + std::to_string(how.w_layout));
  if (how.check < 0 || how.check > 2)
    throw std::invalid_argument("dae_chain: check must be 0 (none), 1 (finite) or 2 (finite and "
                                "binary), not " + std::to_string(how.check));
  ContextCall call(stream);
  Context& ctx = call.ctx;
  if (how.check) {
    auto* flags = static_cast<uint32_t*>(ctx.scratch(kFlags, sizeof(uint32_t)));
    check(cudaMemsetAsync(flags, 0, sizeof(uint32_t), stream), "cudaMemsetAsync");
    launch_check_values(x, B * D, int(sizeof(T)), how.check == 2, flags,
                        reinterpret_cast<uintptr_t>(stream));
    check(cudaMemcpyAsync(ctx.host_flags, flags, sizeof(uint32_t), cudaMemcpyDeviceToHost,
                          stream),
          "cudaMemcpyAsync (check flags)");
    check(cudaEventRecord(ctx.checked, stream), "cudaEventRecord");
  }
  // A tied model multiplied by a copy of W^T is an untied one with U = W^T. The copy is made
  // in every call (W may have changed in place since the last), on the caller's stream.
  DaeModel<T> model = m;
  const int layout = how.w_layout;
  if (!m.U && (layout == kWTransposed || (layout == kWAuto && chain_w_transposed(B)))) {
    T* wt = static_cast<T*>(ctx.scratch(kWt, size_t(D * H) * sizeof(T)));
    transpose<T>(m.W, D, H, wt, stream);
    model.U = wt;
  }
  T* xt = static_cast<T*>(ctx.scratch(kXt, size_t(B * D) * sizeof(T)));
  T* h = static_cast<T*>(ctx.scratch(kH, size_t(B * H) * sizeof(T)));
  T* o = static_cast<T*>(ctx.scratch(kO, size_t(B * D) * sizeof(T)));
  auto* dyn = static_cast<ChainDyn*>(ctx.scratch(kDyn, sizeof(ChainDyn)));
  ChainDyn value{x, records, means, a.clamp, a.seed, a.burn_in, a.every, total,
                 a.first_step, a.first_chain, {}};
  for (uint32_t& s : value.s) s = 0xFFFFFFFFu;
  set_dyn_kernel<<<1, 1, 0, stream>>>(dyn, value);
  check(cudaGetLastError(), "chain setup kernel launch");
  corrupt(x, xt, B, D, int(sizeof(T)), m.corruption, double(m.corruption_param), a.seed,
          a.first_step, a.first_chain, reinterpret_cast<uintptr_t>(stream));
  // Vector accesses need every array the epilogue touches by group aligned (a view made by
  // another framework may start anywhere). Branches start at whole rows: they keep it.
  const Quads q = make_quads(B, D, {o, model.b0, xt, x, records, means});
  const int branches = pick_branches(how.branches, B);
  int64_t done = 0;
  if (branches > 1) ctx.ensure_side_lane();  // before any capture: making it allocates and waits
  const int64_t per_graph = how.steps_per_graph;
  if (per_graph > 0 && total >= per_graph) {
    const cudaGraphExec_t exec = chain_graph<T>(ctx, model, q, branches, xt, h, o, dyn,
                                                a.clamp_per_chain, a.record_means, per_graph,
                                                stream);
    for (; total - done >= per_graph; done += per_graph)
      check(cudaGraphLaunch(exec, stream), "cudaGraphLaunch");
  }
  // The steps left are launched directly.
  if (total > done)
    enqueue_branches<T>(ctx, stream, false, model, q, branches, xt, h, o, dyn, a.clamp_per_chain,
                        a.record_means, total - done);
  call.finish();
  if (!how.check) return 0;
  check(cudaEventSynchronize(ctx.checked), "cudaEventSynchronize (check flags)");
  return *ctx.host_flags;
}

template uint32_t dae_chain<float>(const DaeModel<float>&, const ChainArgs&, float*, float*,
                                   float*, const ChainLaunch&, cudaStream_t);
template uint32_t dae_chain<double>(const DaeModel<double>&, const ChainArgs&, double*, double*,
                                    double*, const ChainLaunch&, cudaStream_t);

}  // namespace wb::cuda
