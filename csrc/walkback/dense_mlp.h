// A stack of dense layers with one activation, forward and backward, over B rows at a time:
// the network under the diffusion model's readout (and any later model that needs an MLP).
// Every product goes through parallel_gemm.h (column slices of single-threaded BLAS calls) with
// the bias and the activation (or its derivative) fused into the slice's epilogue.
#pragma once
#include <cstdint>
#include <vector>

#include "walkback/common.h"
#include "walkback/packed_gemm.h"

namespace wb {

template <class T>
struct DenseLayer {
  int64_t in = 0, out = 0;
  const T* W = nullptr;  // (in, out), row-major
  const T* b = nullptr;  // (out)
  // W packed for walkback's own GEMM (float only; see pack_layers), used by mlp_forward; and
  // W^T, used by mlp_backward for the gradient with respect to the layer's input.
  const PackedWeights* packed = nullptr;
  const PackedWeights* packed_t = nullptr;
};

// A stack's weights packed, kept by a thread between calls (KeptWorkspace<PackedStack>).
struct PackedStack {
  std::vector<PackedWeights> layers;
  size_t bytes() const {
    size_t b = 0;
    for (const auto& p : layers) b += p.bytes();
    return b;
  }
};

// Packs each layer's W (and W^T when `transposed_too`) into `store` and points the layer at
// them: for a caller that runs the same layers many times (a chain's steps, forward and back).
void pack_layers(std::vector<DenseLayer<float>>& layers, PackedStack& store,
                 bool transposed_too = false);

// acts[l] (B x layers[l].out) = act(input_l W_l + b_l), input_0 = x (B x layers[0].in).
template <class T>
void mlp_forward(const std::vector<DenseLayer<T>>& layers, Activation act, int64_t B, const T* x,
                 const std::vector<T*>& acts);

// Back-propagates d_top (B x the last layer's out: d loss / d acts.back(), overwritten by the
// top layer's pre-activation gradient) through the stack: writes gW[l] and gb[l] (added to them
// when `accumulate`; skipped where gW[l] is null) and, when d_x is not null, the gradient with
// respect to x (B x layers[0].in). With `deltas` (one per layer below the top), layer l's
// pre-activation gradient (B x layers[l].out) is left in deltas[l]: a chain stacks its steps'
// gradients there and takes every weight gradient afterwards in one product (mlp_weight_grads).
template <class T>
void mlp_backward(const std::vector<DenseLayer<T>>& layers, Activation act, int64_t B,
                  const T* x, const std::vector<T*>& acts, T* d_top, const std::vector<T*>& gW,
                  const std::vector<T*>& gb, T* d_x, bool accumulate = false,
                  const std::vector<T*>& deltas = {});

// gW[l] = input_l^T deltas[l] and gb[l] = the column sums of deltas[l] over `rows` rows (added
// when `accumulate`), input_0 = x, input_l = acts[l - 1]: the weight gradients from stacked
// pre-activation gradients.
template <class T>
void mlp_weight_grads(const std::vector<DenseLayer<T>>& layers, int64_t rows, const T* x,
                      const std::vector<const T*>& acts, const std::vector<const T*>& deltas,
                      const std::vector<T*>& gW, const std::vector<T*>& gb, bool accumulate);

// sum[j] = sum over rows of a[r * ld + j] for j in [0, n), columns in parallel, rows in order.
template <class T>
void column_sums(const T* a, int64_t rows, int64_t n, int64_t ld, T* sum);

}  // namespace wb
