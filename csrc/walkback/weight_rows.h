// One chain's products with W a row at a time (B = 1): the encoder's sum of the rows whose
// input is on, and the decoder's dot product of each row with h. Each result's arithmetic is
// fixed by its inputs alone, not by the SIMD level or the thread that computes it, so every
// clone and every thread count gives the same bits.
#pragma once
#include <cstdint>

#include "walkback/simd.h"

namespace wb {
namespace {  // one copy per translation unit: the SIMD clones stay local

// acc[j] += sum_r v[r] * rows[r][j] for j < n: eight rows per pass over acc, then four, then
// one. Eight halve the loads and stores of acc (in L1) next to four while the rows come from L2
// (measured, benchmarks/RESULTS.md: -8% of a one-chain step).
template <class T>
WB_SIMD_CLONES void accumulate_rows(T* acc, const T* const* rows, const T* v, int64_t count,
                                    int64_t n) {
  int64_t r = 0;
  for (; r + 8 <= count; r += 8) {
    const T *w0 = rows[r], *w1 = rows[r + 1], *w2 = rows[r + 2], *w3 = rows[r + 3];
    const T *w4 = rows[r + 4], *w5 = rows[r + 5], *w6 = rows[r + 6], *w7 = rows[r + 7];
    const T v0 = v[r], v1 = v[r + 1], v2 = v[r + 2], v3 = v[r + 3];
    const T v4 = v[r + 4], v5 = v[r + 5], v6 = v[r + 6], v7 = v[r + 7];
    for (int64_t j = 0; j < n; ++j)
      acc[j] += ((v0 * w0[j] + v1 * w1[j]) + (v2 * w2[j] + v3 * w3[j])) +
                ((v4 * w4[j] + v5 * w5[j]) + (v6 * w6[j] + v7 * w7[j]));
  }
  for (; r + 4 <= count; r += 4) {
    const T *w0 = rows[r], *w1 = rows[r + 1], *w2 = rows[r + 2], *w3 = rows[r + 3];
    const T v0 = v[r], v1 = v[r + 1], v2 = v[r + 2], v3 = v[r + 3];
    for (int64_t j = 0; j < n; ++j) acc[j] += (v0 * w0[j] + v1 * w1[j]) + (v2 * w2[j] + v3 * w3[j]);
  }
  for (; r < count; ++r) {
    const T* w = rows[r];
    const T vr = v[r];
    for (int64_t j = 0; j < n; ++j) acc[j] += vr * w[j];
  }
}

constexpr int kDotLanes = 16;

// The lanes of a dot product added in a fixed tree.
template <class T>
inline T sum_lanes(const T* a) {
  T s[8];
  for (int l = 0; l < 8; ++l) s[l] = a[l] + a[l + 8];
  for (int l = 0; l < 4; ++l) s[l] = s[l] + s[l + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}

// o[i] = w[i * ld : i * ld + n] . h for i < count. Lane l of a dot product adds the products
// of the elements j = l (mod 16) in order, and the lanes are then added in a fixed tree; eight
// rows share each pass over h (how many does not change the bits).
template <class T>
WB_SIMD_CLONES void row_dots(const T* w, int64_t ld, int64_t count, const T* h, int64_t n,
                             T* o) {
  const int64_t body = n - n % kDotLanes;
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    T a[8][kDotLanes] = {};
    for (int64_t j = 0; j < body; j += kDotLanes)
      for (int l = 0; l < kDotLanes; ++l) {
        const T hv = h[j + l];
        for (int q = 0; q < 8; ++q) a[q][l] += w[(i + q) * ld + j + l] * hv;
      }
    for (int l = 0; body + l < n; ++l)
      for (int q = 0; q < 8; ++q) a[q][l] += w[(i + q) * ld + body + l] * h[body + l];
    for (int q = 0; q < 8; ++q) o[i + q] = sum_lanes(a[q]);
  }
  for (; i < count; ++i) {
    const T* wi = w + i * ld;
    T a[kDotLanes] = {};
    for (int64_t j = 0; j < body; j += kDotLanes)
      for (int l = 0; l < kDotLanes; ++l) a[l] += wi[j + l] * h[j + l];
    for (int l = 0; body + l < n; ++l) a[l] += wi[body + l] * h[body + l];
    o[i] = sum_lanes(a);
  }
}

}  // namespace
}  // namespace wb
