// The DAE on the GPU (host-side declarations): the chain, walk-back training, the optimizer
// updates. Pointers are device pointers; `stream` is the caller's (CuPy's current stream).
// The model and argument structs are the CPU ones (walkback/dae_chain.h, dae_train.h), with
// device pointers in them, so both backends take the same description of the work.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "walkback/dae_chain.h"
#include "walkback/dae_train.h"

namespace wb::cuda {

// How a tied model's second GEMM (h W^T) reads W. kWAsStored reads W itself (cuBLAS's
// transposed-operand kernel); kWTransposed first copies W^T into a scratch buffer, once per
// call, and multiplies by that (the plain kernel, which cuBLAS runs faster for some shapes);
// kWAuto picks by batch size (chain_w_transposed, dae_chain.cu). Untied models are not
// affected.
enum WLayout : int { kWAuto = 0, kWAsStored = 1, kWTransposed = 2 };

// How the GPU chain runs (the CPU's ChainArgs say what it computes).
struct ChainLaunch {
  // > 0: the steps run as replays of a CUDA graph of that many steps (one launch for many
  // steps: what makes a few chains fast); 0 launches every kernel directly.
  int64_t steps_per_graph = 16;
  // How many independent row blocks run side by side (1 or 2; 0 picks two from kBranchRows
  // rows on, as training does). The uniforms drawn do not depend on it; a sample can, where
  // float rounding of a GEMM moves a mean across its uniform.
  int branches = 0;
  int w_layout = kWAuto;
  // Check the start state first: 0 no, 1 finite, 2 finite and binary. The check's flags come
  // back without stalling the stream: the chain is queued behind the check, then the driver
  // waits for the check alone. A bad state has then run through the chain (x holds garbage);
  // the caller raises.
  int check = 0;
};

// Returns the check's bits (as check_values: 1 not finite, 2 not binary; 0 when unchecked).
template <class T>
uint32_t dae_chain(const DaeModel<T>& m, const ChainArgs& a, T* x, T* records, T* means,
                   const ChainLaunch& how, cudaStream_t stream);

// Bits of `bad_input`: the data checks run inside the first step's kernel (a separate check
// would cost the caller a synchronization of its own).
enum BadInput : uint32_t { kNotFinite = 1, kOutsideUnitInterval = 2 };

// The loss (mean over the batch), and the gradients when `grads` is not null. Synchronizes
// the stream once, to read the loss and `bad_input` (nonzero: x had NaN or infinite values, or
// values outside [0, 1] for a Bernoulli model; the results are then meaningless). With
// `loss_out` (a device scalar) it waits for nothing: the loss goes there, NaN for bad input,
// and the return value and *bad_input are 0.
// `branches` as for dae_chain (0 picks two for batches of 4096 rows or more): their forward
// pass and the hidden layer's gradient (per walk-back step) run as two row branches on two
// streams, and the bias gradients' sums and the loss's final sum beside the weight gradients'
// GEMMs (the loss then sums its per-block parts in another grouping: the same up to rounding).
template <class T>
double dae_walkback(const DaeModel<T>& m, const WalkbackArgs& a, const T* x, DaeGrads<T>* grads,
                    uint32_t* bad_input, double* loss_out, int branches, cudaStream_t stream);

// kind: 0 SGD (s1 = velocity), 1 Adam (s1 = m, s2 = v), 2 RMSprop (s1 = mean square).
struct OptimizerHyper {
  double lr = 0, momentum = 0, weight_decay = 0, beta1 = 0, beta2 = 0, eps = 0, bc1 = 1, bc2 = 1,
         rho = 0;
};
// One parameter array and its gradient and slots (s2 only for Adam), n elements each.
template <class T>
struct OptimizerArray {
  T* p;
  const T* g;
  T* s1;
  T* s2;
  int64_t n;
};
// The update of `count` arrays of one dtype, in one kernel launch per kOptimizerArrays arrays
// (a model's parameters are a few arrays, two of them small: one launch each was measured as
// 3 launches of 3.1 us on average per B = 4096 training step, mostly launch latency).
constexpr int kOptimizerArrays = 8;
template <class T>
void optimizer_update(int kind, const OptimizerArray<T>* arrays, int count,
                      const OptimizerHyper& h, cudaStream_t stream);

// out[r] = row_term[r] + logsumexp_c(scale * (a_r . b_c) + col_term[c]) for the rows r of a
// (M x D) against the rows c of b (N x D): the Parzen kernel's core (walkback/parzen.h).
template <class T>
void gemm_logsumexp(const T* a, int64_t M, const T* b, int64_t N, int64_t D, T scale,
                    const T* col_term, const double* row_term, double* out, cudaStream_t stream);

}  // namespace wb::cuda
