// Row loops shared by the CPU drivers (chain and training), compiled per SIMD level.
#pragma once
#include <cstdint>

#include "walkback/elementwise.h"
#include "walkback/simd.h"

namespace wb {
namespace {  // one copy per translation unit: the SIMD clones stay local

// h = act(h + b1) over one row.
template <class T, Activation A>
WB_SIMD_CLONES void bias_activate(T* h, const T* b1, int64_t n) {
  for (int64_t j = 0; j < n; ++j) h[j] = activate<T>(A, h[j] + b1[j]);
}

// From the decoder's pre-activation o (without bias): the mean, a sample of p(x | w) for the free
// units, the clamped units kept; w is left in o.
template <class T, Reconstruction R>
WB_SIMD_CLONES void sample_row(T* x, T* o, const T* b0, const uint8_t* clamp, T sigma,
                               const float* r, int64_t n) {
  // Two loops, not `clamp && clamp[i]` in one: GCC vectorized that as a masked load from
  // clamp even when it was null, and a masked-off load of the null page took a slow assist on
  // every vector (measured: this function was 11.7% of a 256-chain step).
  if (!clamp) {
    for (int64_t i = 0; i < n; ++i) {
      const T mean = reconstruction_mean<T>(R, o[i] + b0[i]);
      x[i] = reconstruction_sample<T>(R, mean, sigma, r[i], r[i]);
      o[i] = mean;
    }
    return;
  }
  for (int64_t i = 0; i < n; ++i) {
    const T mean = reconstruction_mean<T>(R, o[i] + b0[i]);
    const T s = reconstruction_sample<T>(R, mean, sigma, r[i], r[i]);
    const bool keep = clamp[i] != 0;
    o[i] = keep ? x[i] : mean;
    x[i] = keep ? x[i] : s;
  }
}

// o += b0 (o becomes the pre-activation), nll[i] = -log p(target_i | o_i) and
// d_o[i] = scale * d nll / d o_i.
template <class T, Reconstruction R>
WB_SIMD_CLONES void nll_grad_row(T* o, const T* b0, const T* target, T* nll, T* d_o, T scale,
                                 T sigma, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const T z = o[i] + b0[i];
    o[i] = z;
    nll[i] = reconstruction_nll<T>(R, z, target[i], sigma);
    d_o[i] = scale * reconstruction_nll_grad<T>(R, z, target[i], sigma);
  }
}

// g *= act'(h), with h the activation's output.
template <class T, Activation A>
WB_SIMD_CLONES void mul_activation_grad(T* g, const T* h, int64_t n) {
  for (int64_t i = 0; i < n; ++i) g[i] *= activation_grad_from_output<T>(A, h[i]);
}

}  // namespace
}  // namespace wb
