// Walk-back training of a DAE on the GPU, the CPU driver's algorithm (walkback/dae_train.cpp):
// k forward steps over stacked buffers, each GEMM + bias/activation + one epilogue kernel that
// takes the NLL and its derivative, samples and corrupts the next step's input; then the
// backward pass of all k steps at once as single GEMMs. The loss is summed in a fixed order
// (per block, then one block over the partial sums), so it does not vary from run to run.
#include <cuda_runtime.h>

#include <cstring>

#include "cuda/context.h"
#include "cuda/corrupt.h"
#include "cuda/dae.h"
#include "cuda/dae_kernels.cuh"

namespace wb::cuda {
namespace {

// Fixed-order tree sum of the block's `v` values into v[0] (blockDim.x a power of two).
__device__ __forceinline__ void block_sum(double* v) {
  for (unsigned w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) v[threadIdx.x] += v[threadIdx.x + w];
    __syncthreads();
  }
}

// One walk-back step's epilogue: o (B x D, the decoder's GEMM without bias) gives the NLL of
// the clean x, d_o = scale * d NLL / d o, and (when xt_next is given) a sample of p(x | w)
// corrupted into the next step's input. partial gets one sum per thread block. The grid is
// sized to the chip (epilogue_blocks), so each thread takes several groups and the block's sum
// is paid once for them.
template <class T>
__global__ void walkback_epilogue_kernel(const T* o, const T* b0, const T* x, T* d_o,
                                         T* xt_next, double* partial, Quads q, Reconstruction R,
                                         T sigma, Corruption ck, T cp, StreamKey key,
                                         uint32_t step, uint32_t first_chain, T scale,
                                         bool counted, uint32_t* bad_input) {
  double local = 0.0;
  WB_FOR_EACH_GROUP(q, t) {
    int64_t c, g;
    q.split(t, c, g);
    const int n = q.count(g);
    const uint32_t chain = first_chain + static_cast<uint32_t>(c);
    const int64_t at = c * q.units + 4 * g;
    T ov[4], bv[4], xv[4], dv[4];
    load4(o + at, n, q.vec, ov);
    load4(b0 + 4 * g, n, q.vec, bv);
    load4(x + at, n, q.vec, xv);
    for (int l = 0; l < 4; ++l) {
      const T z = ov[l] + bv[l];
      const T tv = xv[l];
      if (bad_input && l < n) {  // the first step checks the data (rarely true: no contention)
        if (!isfinite(tv))
          atomicOr(bad_input, uint32_t(kNotFinite));
        else if (R == Reconstruction::Bernoulli && (tv < T(0) || tv > T(1)))
          atomicOr(bad_input, uint32_t(kOutsideUnitInterval));
      }
      if (counted && l < n) local += double(reconstruction_nll<T>(R, z, tv, sigma));
      dv[l] = counted ? scale * reconstruction_nll_grad<T>(R, z, tv, sigma) : T(0);
    }
    store4(d_o + at, n, q.vec, dv);
    if (xt_next) {  // the same for the whole launch: the last step (k = 1: the only one) skips it
      float r[4], u[4] = {0.f, 0.f, 0.f, 0.f};
      stream_numbers(key, uint32_t(g), chain, step, kStreamSample, R == Reconstruction::Gaussian,
                     r);
      if (ck != Corruption::None)
        stream_numbers(key, uint32_t(g), chain, step + 1, kStreamCorrupt,
                       corruption_needs_normal(ck), u);
      T xc[4];
      for (int l = 0; l < 4; ++l) {
        const T mean = reconstruction_mean<T>(R, ov[l] + bv[l]);
        xc[l] = corrupt_value<T>(ck, cp, reconstruction_sample<T>(R, mean, sigma, r[l], r[l]),
                                 u[l], u[l]);
      }
      store4(xt_next + at, n, q.vec, xc);
    }
  }
  // The block's sum in a fixed order: within each warp by shuffles, then the warps in turn.
  for (int off = 16; off > 0; off /= 2) local += __shfl_down_sync(0xffffffffu, local, off);
  __shared__ double warp_sums[kEpilogueThreads / 32];
  if (threadIdx.x % 32 == 0) warp_sums[threadIdx.x / 32] = local;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    for (int w = 0; w < kEpilogueThreads / 32; ++w) s += warp_sums[w];
    partial[blockIdx.x] = s;
  }
}

// The epilogue's grid: 4 blocks per multiprocessor at most (the float kernel's 64 registers a
// thread allow 4 blocks of 256 threads on one; the double kernel's 88 allow 2, so its grid runs
// in two waves), so a block sums many groups; one group per thread had made a block's
// reduction (8 barriers) as frequent as its groups. The loss's grouping, and so its last bits,
// follows the device's multiprocessor count; on one device it is the same from run to run.
inline unsigned epilogue_blocks(const Quads& q, int sm_count) {
  return blocks_for(q.total, kEpilogueThreads, int64_t(4) * (sm_count > 0 ? sm_count : 1));
}

// out[0] = scale * (the sum of v, in a fixed order), NaN when *bad is nonzero; also written to
// *loss_out when given (the caller's device scalar).
__global__ void sum_kernel(const double* v, int64_t n, double scale, const uint32_t* bad,
                           double* out, double* loss_out) {
  __shared__ double red[1024];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += v[i];
  red[threadIdx.x] = s;
  __syncthreads();
  block_sum(red);
  if (threadIdx.x == 0) {
    const double loss = *bad ? nan("") : scale * red[0];
    out[0] = loss;
    if (loss_out) *loss_out = loss;
  }
}

// Up to kOptimizerArrays arrays, passed by value; end[k] is the flat index one past array k's
// last element, in the concatenation of all of them.
template <class T>
struct OptimizerBatch {
  OptimizerArray<T> a[kOptimizerArrays];
  int64_t end[kOptimizerArrays];
  int count;
};

template <class T>
__global__ void optimizer_kernel(int kind, OptimizerBatch<T> batch, T lr, T momentum, T wd,
                                 T beta1, T beta2, T eps, T bc1, T bc2, T rho) {
  const int64_t total = batch.end[batch.count - 1];
  int k = 0;  // a thread's flat indices only grow, so its array index only moves forward
  for (int64_t f = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; f < total;
       f += int64_t(gridDim.x) * blockDim.x) {
    while (f >= batch.end[k]) ++k;
    const OptimizerArray<T>& a = batch.a[k];
    const int64_t i = f - (k > 0 ? batch.end[k - 1] : 0);
    if (kind == 0)
      sgd_update<T>(a.p[i], a.g[i], a.s1[i], lr, momentum, wd);
    else if (kind == 1)
      adam_update<T>(a.p[i], a.g[i], a.s1[i], a.s2[i], lr, beta1, beta2, eps, bc1, bc2, wd);
    else
      rmsprop_update<T>(a.p[i], a.g[i], a.s1[i], lr, rho, eps, wd);
  }
}

// The forward pass (and, with d_a, the hidden layer's gradient) of one branch's rows, on
// stream `s` through cuBLAS handle `blas`: corruption, then per walk-back step j two GEMMs,
// bias + activation and the epilogue (its block sums at partial + j * partials_per_step).
template <class T>
void walkback_rows(const DaeModel<T>& m, const WalkbackArgs& a, const Branch& br, const T* x,
                   T* xt, T* h, T* o, T* d_o, T* d_a, double* partial, unsigned blocks,
                   int64_t partials_per_step, uint32_t* bad_d, CublasHandle blas,
                   cudaStream_t s) {
  const int64_t B = a.batch, D = m.D, H = m.H, K = a.walkbacks, R = br.q.rows, r0 = br.row0;
  const StreamKey key = stream_key(a.seed);
  const T scale = T(1) / T(B);
  const uint32_t first_chain = a.first_chain + static_cast<uint32_t>(r0);
  corrupt(x + r0 * D, xt + r0 * D, R, D, int(sizeof(T)), m.corruption,
          double(m.corruption_param), a.seed, 0, first_chain, reinterpret_cast<uintptr_t>(s));
  for (int64_t j = 0; j < K; ++j) {
    T* xt_j = xt + j * B * D + r0 * D;
    T* h_j = h + j * B * H + r0 * H;
    gemm_on<T>(blas, false, false, R, H, D, T(1), xt_j, D, m.W, H, T(0), h_j, H);
    launch_bias_activate<T>(h_j, m.b1, R, H, m.activation, nullptr, s);
    if (m.U)
      gemm_on<T>(blas, false, false, R, D, H, T(1), h_j, H, m.U, D, T(0), o + r0 * D, D);
    else
      gemm_on<T>(blas, false, true, R, D, H, T(1), h_j, H, m.W, H, T(0), o + r0 * D, D);
    const bool counted = !a.last_only || j + 1 == K;
    walkback_epilogue_kernel<T><<<blocks, kEpilogueThreads, 0, s>>>(
        o + r0 * D, m.b0, x + r0 * D, d_o + j * B * D + r0 * D,
        j + 1 < K ? xt + (j + 1) * B * D + r0 * D : nullptr, partial + j * partials_per_step,
        br.q, m.reconstruction, m.sigma, m.corruption, m.corruption_param, key, uint32_t(j),
        first_chain, scale, counted, j == 0 ? bad_d : nullptr);
    check(cudaGetLastError(), "walk-back epilogue kernel launch");
  }
  if (!d_a) return;
  // dA = (dO W) * act'(h) (tied) or (dO U^T) * act'(h): all steps in one GEMM when the branch
  // is the whole batch, else per step (a branch's rows are not contiguous across steps).
  const int64_t steps = R == B ? 1 : K, rows = R == B ? K * B : R;
  for (int64_t j = 0; j < steps; ++j) {
    const T* d_o_j = d_o + j * B * D + r0 * D;
    T* d_a_j = d_a + j * B * H + r0 * H;
    if (m.U)
      gemm_on<T>(blas, false, true, rows, H, D, T(1), d_o_j, D, m.U, D, T(0), d_a_j, H);
    else
      gemm_on<T>(blas, false, false, rows, H, D, T(1), d_o_j, D, m.W, H, T(0), d_a_j, H);
    launch_mul_activation_grad<T>(d_a_j, h + j * B * H + r0 * H, rows * H, m.activation, s);
  }
}

}  // namespace

template <class T>
double dae_walkback(const DaeModel<T>& m, const WalkbackArgs& a, const T* x, DaeGrads<T>* grads,
                    uint32_t* bad_input, double* loss_out, int branches, cudaStream_t stream) {
  const int64_t B = a.batch, D = m.D, H = m.H, K = a.walkbacks, KB = K * B;
  if (B == 0) return 0.0;
  ContextCall call(stream);
  Context& ctx = call.ctx;
  const Quads q = make_quads(B, D, {x, m.b0});  // the scratch buffers are aligned
  branches = pick_branches(branches, B);
  Branch br[kMaxBranches];
  split_branches(q, branches, br);
  unsigned blocks[kMaxBranches];
  int64_t partials_per_step = 0;  // the epilogues' block sums of one walk-back step, all branches
  for (int b = 0; b < branches; ++b) {
    blocks[b] = epilogue_blocks(br[b].q, ctx.sm_count);
    partials_per_step += blocks[b];
  }
  T* xt = static_cast<T*>(ctx.scratch(kXt, size_t(KB * D) * sizeof(T)));
  T* h = static_cast<T*>(ctx.scratch(kH, size_t(KB * H) * sizeof(T)));
  T* d_o = static_cast<T*>(ctx.scratch(kDo, size_t(KB * D) * sizeof(T)));
  T* o = static_cast<T*>(ctx.scratch(kO, size_t(B * D) * sizeof(T)));
  T* d_a = grads ? static_cast<T*>(ctx.scratch(kDa, size_t(KB * H) * sizeof(T))) : nullptr;
  auto* partial = static_cast<double*>(ctx.scratch(kPartial, size_t(K * partials_per_step) * 8));
  // The loss and the bad-input bits, read back together.
  auto* result_d = static_cast<double*>(ctx.scratch(kLoss, 16));
  auto* bad_d = reinterpret_cast<uint32_t*>(result_d + 1);
  check(cudaMemsetAsync(bad_d, 0, sizeof(uint32_t), stream), "cudaMemsetAsync");
  {  // the second branch's rows run on the side lane, beside the first's
    SideFork fork(ctx, stream, branches > 1);
    int64_t offset = 0;
    for (int b = 0; b < branches; ++b) {
      const bool side = b > 0;
      walkback_rows<T>(m, a, br[b], x, xt, h, o, d_o, d_a, partial + offset, blocks[b],
                       partials_per_step, bad_d, side ? ctx.side_blas : ctx.blas,
                       side ? fork.side() : stream);
      offset += blocks[b];
    }
    fork.join();
  }
  // The loss from the epilogues' block sums: one block, so with gradients to compute it runs on
  // the side lane beside their GEMMs rather than before them.
  auto sum_loss = [&](cudaStream_t s) {
    sum_kernel<<<1, 1024, 0, s>>>(partial, K * partials_per_step, 1.0 / double(B), bad_d,
                                  result_d, loss_out);
    check(cudaGetLastError(), "sum kernel launch");
  };
  if (grads) {
    // With two branches the bias gradients (column sums of dA and dO: memory-bound gemv) run
    // on the side lane while the weight gradients (compute-bound GEMMs) run here, so their
    // time hides under the GEMMs'. Each sum is the same cuBLAS call either way.
    const bool side = branches > 1;
    SideFork fork(ctx, stream, side);
    const CublasHandle sums_blas = side ? ctx.side_blas : ctx.blas;
    const cudaStream_t sums_stream = side ? fork.side() : stream;
    sum_loss(sums_stream);
    column_sums<T>(ctx, sums_blas, d_a, KB, H, grads->b1, T(0), sums_stream);
    column_sums<T>(ctx, sums_blas, d_o, KB, D, grads->b0, T(0), sums_stream);
    // dW = X~^T dA (+ dO^T H when tied), dU = H^T dO.
    gemm<T>(ctx, true, false, D, H, KB, T(1), xt, D, d_a, H, T(0), grads->W, H);
    if (m.U)
      gemm<T>(ctx, true, false, H, D, KB, T(1), h, H, d_o, D, T(0), grads->U, D);
    else
      gemm<T>(ctx, true, false, D, H, KB, T(1), d_o, D, h, H, T(1), grads->W, H);
    fork.join();
  } else {
    sum_loss(stream);
  }
  if (loss_out) {  // the caller reads the loss from its device scalar: no waiting here
    call.finish();
    *bad_input = 0;
    return 0.0;
  }
  double result[2] = {0.0, 0.0};
  check(cudaMemcpyAsync(result, result_d, sizeof result, cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync (loss)");
  call.finish();
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  std::memcpy(bad_input, &result[1], sizeof(uint32_t));
  return result[0];
}

template <class T>
void launch_optimizer(int kind, const OptimizerBatch<T>& batch, const OptimizerHyper& hy,
                      cudaStream_t stream) {
  optimizer_kernel<T><<<blocks_for(batch.end[batch.count - 1], 256, 8192), 256, 0, stream>>>(
      kind, batch, T(hy.lr), T(hy.momentum), T(hy.weight_decay), T(hy.beta1), T(hy.beta2),
      T(hy.eps), T(hy.bc1), T(hy.bc2), T(hy.rho));
  check(cudaGetLastError(), "optimizer kernel launch");
}

template <class T>
void optimizer_update(int kind, const OptimizerArray<T>* arrays, int count,
                      const OptimizerHyper& hy, cudaStream_t stream) {
  OptimizerBatch<T> batch{};
  int64_t total = 0;
  for (int k = 0; k < count; ++k) {
    if (arrays[k].n == 0) continue;
    total += arrays[k].n;
    batch.a[batch.count] = arrays[k];
    batch.end[batch.count] = total;
    if (++batch.count == kOptimizerArrays) {  // full: launch it, start the next batch
      launch_optimizer<T>(kind, batch, hy, stream);
      batch = OptimizerBatch<T>{};
      total = 0;
    }
  }
  if (batch.count > 0) launch_optimizer<T>(kind, batch, hy, stream);
}

template double dae_walkback<float>(const DaeModel<float>&, const WalkbackArgs&, const float*,
                                    DaeGrads<float>*, uint32_t*, double*, int, cudaStream_t);
template double dae_walkback<double>(const DaeModel<double>&, const WalkbackArgs&, const double*,
                                     DaeGrads<double>*, uint32_t*, double*, int, cudaStream_t);
template void optimizer_update<float>(int, const OptimizerArray<float>*, int,
                                      const OptimizerHyper&, cudaStream_t);
template void optimizer_update<double>(int, const OptimizerArray<double>*, int,
                                       const OptimizerHyper&, cudaStream_t);

}  // namespace wb::cuda
