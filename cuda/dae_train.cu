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

// One walk-back step's epilogue for the rows c of the batch: o (B x D, the decoder's GEMM
// without bias) gives the NLL of the clean x, d_o = scale * d NLL / d o, and (when xt_next is
// given) a sample of p(x | w) corrupted into the next step's input. partial gets one sum per
// (row, block of units).
template <class T>
__global__ void walkback_epilogue_kernel(const T* o, const T* b0, const T* x, T* d_o,
                                         T* xt_next, double* partial, int64_t B, int64_t D,
                                         Reconstruction R, T sigma, Corruption ck, T cp,
                                         StreamKey key, uint32_t step, uint32_t first_chain,
                                         T scale, bool counted, uint32_t* bad_input) {
  __shared__ double red[kEpilogueThreads];
  const int64_t groups = (D + 3) / 4;
  const int64_t g = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  for (int64_t c = blockIdx.y; c < B; c += gridDim.y) {
    double local = 0.0;
    if (g < groups) {
      const uint32_t chain = first_chain + static_cast<uint32_t>(c);
      float r[4] = {0.f, 0.f, 0.f, 0.f}, q[4] = {0.f, 0.f, 0.f, 0.f};
      if (xt_next) {
        stream_numbers(key, uint32_t(g), chain, step, kStreamSample,
                       R == Reconstruction::Gaussian, r);
        if (ck != Corruption::None)
          stream_numbers(key, uint32_t(g), chain, step + 1, kStreamCorrupt,
                         corruption_needs_normal(ck), q);
      }
      for (int l = 0; l < 4; ++l) {
        const int64_t i = 4 * g + l;
        if (i >= D) break;
        const int64_t idx = c * D + i;
        const T z = o[idx] + b0[i];
        const T t = x[idx];
        if (bad_input) {  // the first step checks the data (rarely true: atomics cost nothing)
          if (!isfinite(t)) atomicOr(bad_input, uint32_t(kNotFinite));
          else if (R == Reconstruction::Bernoulli && (t < T(0) || t > T(1)))
            atomicOr(bad_input, uint32_t(kOutsideUnitInterval));
        }
        if (counted) local += double(reconstruction_nll<T>(R, z, t, sigma));
        d_o[idx] = counted ? scale * reconstruction_nll_grad<T>(R, z, t, sigma) : T(0);
        if (xt_next) {
          const T mean = reconstruction_mean<T>(R, z);
          const T smp = reconstruction_sample<T>(R, mean, sigma, r[l], r[l]);
          xt_next[idx] = corrupt_value<T>(ck, cp, smp, q[l], q[l]);
        }
      }
    }
    red[threadIdx.x] = local;
    __syncthreads();
    block_sum(red);
    if (threadIdx.x == 0) partial[c * gridDim.x + blockIdx.x] = red[0];
    __syncthreads();
  }
}

__global__ void sum_kernel(const double* v, int64_t n, double* out) {
  __shared__ double red[256];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += v[i];
  red[threadIdx.x] = s;
  __syncthreads();
  block_sum(red);
  if (threadIdx.x == 0) *out = red[0];
}

template <class T>
__global__ void optimizer_kernel(int kind, T* p, const T* g, T* s1, T* s2, int64_t n, T lr,
                                 T momentum, T wd, T beta1, T beta2, T eps, T bc1, T bc2,
                                 T rho) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    if (kind == 0)
      sgd_update<T>(p[i], g[i], s1[i], lr, momentum, wd);
    else if (kind == 1)
      adam_update<T>(p[i], g[i], s1[i], s2[i], lr, beta1, beta2, eps, bc1, bc2, wd);
    else
      rmsprop_update<T>(p[i], g[i], s1[i], lr, rho, eps, wd);
  }
}

}  // namespace

template <class T>
double dae_walkback(const DaeModel<T>& m, const WalkbackArgs& a, const T* x, DaeGrads<T>* grads,
                    uint32_t* bad_input, cudaStream_t stream) {
  const int64_t B = a.batch, D = m.D, H = m.H, K = a.walkbacks, KB = K * B;
  if (B == 0) return 0.0;
  Context& ctx = context();
  ctx.enter(stream);
  const StreamKey key = stream_key(a.seed);
  const dim3 grid(blocks_for((D + 3) / 4, kEpilogueThreads), unsigned(B < 65535 ? B : 65535));
  const int64_t chunks = grid.x;
  T* xt = static_cast<T*>(ctx.scratch(kXt, size_t(KB * D) * sizeof(T)));
  T* h = static_cast<T*>(ctx.scratch(kH, size_t(KB * H) * sizeof(T)));
  T* d_o = static_cast<T*>(ctx.scratch(kDo, size_t(KB * D) * sizeof(T)));
  T* o = static_cast<T*>(ctx.scratch(kO, size_t(B * D) * sizeof(T)));
  auto* partial = static_cast<double*>(ctx.scratch(kPartial, size_t(KB * chunks) * 8));
  // The loss and the bad-input bits, read back together.
  auto* result_d = static_cast<double*>(ctx.scratch(kLoss, 16));
  auto* bad_d = reinterpret_cast<uint32_t*>(result_d + 1);
  check(cudaMemsetAsync(bad_d, 0, sizeof(uint32_t), stream), "cudaMemsetAsync");
  const T scale = T(1) / T(B);

  corrupt(x, xt, B, D, int(sizeof(T)), m.corruption, double(m.corruption_param), a.seed, 0,
          a.first_chain, reinterpret_cast<uintptr_t>(stream));
  for (int64_t j = 0; j < K; ++j) {
    T* xt_j = xt + j * B * D;
    T* h_j = h + j * B * H;
    gemm<T>(ctx, false, false, B, H, D, T(1), xt_j, D, m.W, H, T(0), h_j, H);
    launch_bias_activate<T>(h_j, m.b1, B, H, m.activation, nullptr, stream);
    if (m.U)
      gemm<T>(ctx, false, false, B, D, H, T(1), h_j, H, m.U, D, T(0), o, D);
    else
      gemm<T>(ctx, false, true, B, D, H, T(1), h_j, H, m.W, H, T(0), o, D);
    const bool counted = !a.last_only || j + 1 == K;
    walkback_epilogue_kernel<T><<<grid, kEpilogueThreads, 0, stream>>>(
        o, m.b0, x, d_o + j * B * D, j + 1 < K ? xt + (j + 1) * B * D : nullptr,
        partial + j * B * chunks, B, D, m.reconstruction, m.sigma, m.corruption,
        m.corruption_param, key, uint32_t(j), a.first_chain, scale, counted,
        j == 0 ? bad_d : nullptr);
    check(cudaGetLastError(), "walk-back epilogue kernel launch");
  }
  sum_kernel<<<1, 256, 0, stream>>>(partial, KB * chunks, result_d);
  check(cudaGetLastError(), "sum kernel launch");

  if (grads) {
    // dA = (dO W) * act'(h) (tied) or (dO U^T) * act'(h), all k steps at once.
    T* d_a = static_cast<T*>(ctx.scratch(kDa, size_t(KB * H) * sizeof(T)));
    if (m.U)
      gemm<T>(ctx, false, true, KB, H, D, T(1), d_o, D, m.U, D, T(0), d_a, H);
    else
      gemm<T>(ctx, false, false, KB, H, D, T(1), d_o, D, m.W, H, T(0), d_a, H);
    mul_activation_grad_kernel<T><<<blocks_for(KB * H, 256, 8192), 256, 0, stream>>>(
        d_a, h, KB * H, m.activation);
    check(cudaGetLastError(), "activation gradient kernel launch");
    column_sums<T>(ctx, d_a, KB, H, grads->b1, T(0), stream);
    // dW = X~^T dA (+ dO^T H when tied), dU = H^T dO, db0 = column sums of dO.
    gemm<T>(ctx, true, false, D, H, KB, T(1), xt, D, d_a, H, T(0), grads->W, H);
    if (m.U)
      gemm<T>(ctx, true, false, H, D, KB, T(1), h, H, d_o, D, T(0), grads->U, D);
    else
      gemm<T>(ctx, true, false, D, H, KB, T(1), d_o, D, h, H, T(1), grads->W, H);
    column_sums<T>(ctx, d_o, KB, D, grads->b0, T(0), stream);
  }
  double result[2] = {0.0, 0.0};
  check(cudaMemcpyAsync(result, result_d, sizeof result, cudaMemcpyDeviceToHost, stream),
        "cudaMemcpyAsync (loss)");
  ctx.leave(stream);
  check(cudaStreamSynchronize(stream), "cudaStreamSynchronize");
  std::memcpy(bad_input, &result[1], sizeof(uint32_t));
  return result[0] / double(B);
}

template <class T>
void optimizer_update(int kind, T* p, const T* g, T* s1, T* s2, int64_t n,
                      const OptimizerHyper& hy, cudaStream_t stream) {
  if (n == 0) return;
  optimizer_kernel<T><<<blocks_for(n, 256, 8192), 256, 0, stream>>>(
      kind, p, g, s1, s2, n, T(hy.lr), T(hy.momentum), T(hy.weight_decay), T(hy.beta1),
      T(hy.beta2), T(hy.eps), T(hy.bc1), T(hy.bc2), T(hy.rho));
  check(cudaGetLastError(), "optimizer kernel launch");
}

template double dae_walkback<float>(const DaeModel<float>&, const WalkbackArgs&, const float*,
                                    DaeGrads<float>*, uint32_t*, cudaStream_t);
template double dae_walkback<double>(const DaeModel<double>&, const WalkbackArgs&, const double*,
                                     DaeGrads<double>*, uint32_t*, cudaStream_t);
template void optimizer_update<float>(int, float*, const float*, float*, float*, int64_t,
                                      const OptimizerHyper&, cudaStream_t);
template void optimizer_update<double>(int, double*, const double*, double*, double*, int64_t,
                                       const OptimizerHyper&, cudaStream_t);

}  // namespace wb::cuda
