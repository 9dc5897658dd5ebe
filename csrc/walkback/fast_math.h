// Branch-free float32 exp, log and sin/cos of 2 pi u, host and device: no library calls, so CPU
// loops over them vectorize in every SIMD clone and give the same bits in each.
#pragma once
#include <cstdint>
#include <cstring>

#include "walkback/common.h"

namespace wb {

WB_HD float bits_to_float(int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#else
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
#endif
}

// exp(x) for float32 without branches or library calls, so a CPU loop over it vectorizes in
// every SIMD clone (Cephes' expf polynomial, relative error below 2e-7 on the clamped range).
WB_HD float fast_expf(float x) {
  // Plain comparisons rather than fminf/fmaxf: these vectorize without -ffinite-math-only.
  x = x < -87.0f ? -87.0f : x;
  x = x > 88.0f ? 88.0f : x;
  // Round to nearest by truncation (floorf is a library call in the baseline SIMD clone).
  const float t = x * 1.44269504088896341f;
  const float n = static_cast<float>(static_cast<int32_t>(t + (t < 0.0f ? -0.5f : 0.5f)));
  float r = x - n * 0.693359375f;
  r = r - n * -2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

WB_HD int32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(f);
#else
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
#endif
}

// log(x) for positive normal float32 x without library calls (Cephes' logf polynomial,
// relative error below 2e-7), so CPU loops over it vectorize.
WB_HD float fast_logf(float x) {
  const int32_t i = float_to_bits(x);
  float e = static_cast<float>(((i >> 23) & 0xff) - 126);
  float m = bits_to_float((i & 0x807fffff) | 0x3f000000);  // x = m 2^e, m in [0.5, 1)
  const bool small = m < 0.70710678118654752f;
  e = small ? e - 1.0f : e;
  m = small ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return m + y + 0.693359375f * e;
}

// sin(2 pi u) and cos(2 pi u) for u in [0, 1]: u is reduced to the nearest quarter turn j/4
// (exactly, since both are dyadic) and Cephes' sinf/cosf polynomials run on the remaining
// angle in [-pi/4, pi/4]; absolute error below 2e-7.
WB_HD void sincos_2pi(float u, float* s, float* c) {
  const float x = u - static_cast<float>(static_cast<int32_t>(u + 0.5f));  // [-0.5, 0.5)
  const float q = 4.0f * x;
  const int32_t j = static_cast<int32_t>(q + (q < 0.0f ? -0.5f : 0.5f));
  const float r = (x - 0.25f * static_cast<float>(j)) * 6.28318530717958648f;
  const float z = r * r;
  float sp = -1.9515295891e-4f;
  sp = sp * z + 8.3321608736e-3f;
  sp = sp * z - 1.6666654611e-1f;
  const float sr = r + r * z * sp;
  float cp = 2.443315711809948e-5f;
  cp = cp * z - 1.388731625493765e-3f;
  cp = cp * z + 4.166664568298827e-2f;
  const float cr = 1.0f - 0.5f * z + z * z * cp;
  const int32_t k = j & 3;
  const float s0 = (k & 1) ? cr : sr, c0 = (k & 1) ? sr : cr;
  *s = (k & 2) ? -s0 : s0;
  *c = (k == 1 || k == 2) ? -c0 : c0;
}

}  // namespace wb
