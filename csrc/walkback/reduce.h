// Sums in double over float or double arrays, in a fixed order: eight running sums in a fixed
// pattern (vectorizable without reassociation), so a result does not depend on the thread
// count or the SIMD level.
#pragma once
#include <cstdint>

namespace wb {

// sum of f(v[i]) for i in [0, n), f returning double.
template <class T, class F>
double sum_in_double(const T* v, int64_t n, F f) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int k = 0; k < 8; ++k) acc[k] += f(v[i + k]);
  for (; i < n; ++i) acc[0] += f(v[i]);
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

template <class T>
double sum_in_double(const T* v, int64_t n) {
  return sum_in_double(v, n, [](T x) { return double(x); });
}

}  // namespace wb
