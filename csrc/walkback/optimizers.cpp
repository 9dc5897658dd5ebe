#include "walkback/optimizers.h"

#include <cstring>
#include <vector>

#include "walkback/elementwise.h"
#include "walkback/reduce.h"
#include "walkback/thread_pool.h"

namespace wb {
namespace {
constexpr int64_t kGrain = 4096;

// Runs loop(i0, i1) over blocks of [0, n) in parallel. With a backup, each block of p is
// copied there first: the update then reads it from cache, so keeping the parameters before
// the step (fit's guard against a diverging loss) costs a write, not another pass.
template <class T, class Loop>
void blocks(int64_t n, const T* p, T* backup, const Loop& loop) {
  pool().parallel_for(n, [&](int64_t b, int64_t e) {
    for (int64_t i0 = b; i0 < e; i0 += kGrain) {
      const int64_t i1 = i0 + kGrain < e ? i0 + kGrain : e;
      if (backup) std::memcpy(backup + i0, p + i0, sizeof(T) * (i1 - i0));
      loop(i0, i1);
    }
  }, kGrain);
}
}  // namespace

// The loops copy the pointers (restrict) and hyper-parameters into locals: read through the
// lambda's captures, every store could alias them and the loop would stay scalar.
template <class T>
void sgd_update_array(T* p, const T* g, T* v, int64_t n, T lr, T momentum, T weight_decay,
                      T grad_scale, T* backup) {
  blocks(n, p, backup, [=](int64_t b, int64_t e) {
    T* __restrict pp = p;
    const T* __restrict gg = g;
    T* __restrict vv = v;
    const T lr_ = lr, mom = momentum, wd = weight_decay, gs = grad_scale;
    if (gs == T(1))  // the common case without clipping: one multiply less in a memory-bound loop
      for (int64_t i = b; i < e; ++i) sgd_update<T>(pp[i], gg[i], vv[i], lr_, mom, wd);
    else
      for (int64_t i = b; i < e; ++i) sgd_update<T>(pp[i], gs * gg[i], vv[i], lr_, mom, wd);
  });
}

template <class T>
void rmsprop_update_array(T* p, const T* g, T* v, int64_t n, T lr, T rho, T eps, T weight_decay,
                          T grad_scale, T* backup) {
  blocks(n, p, backup, [=](int64_t b, int64_t e) {
    T* __restrict pp = p;
    const T* __restrict gg = g;
    T* __restrict vv = v;
    const T lr_ = lr, rho_ = rho, eps_ = eps, wd = weight_decay, gs = grad_scale;
    for (int64_t i = b; i < e; ++i)
      rmsprop_update<T>(pp[i], gs * gg[i], vv[i], lr_, rho_, eps_, wd);
  });
}

template <class T>
void adam_update_array(T* p, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps,
                       T bc1, T bc2, T weight_decay, T grad_scale, T* backup) {
  blocks(n, p, backup, [=](int64_t b, int64_t e) {
    T* __restrict pp = p;
    const T* __restrict gg = g;
    T* __restrict mm = m;
    T* __restrict vv = v;
    const T lr_ = lr, b1 = beta1, b2 = beta2, eps_ = eps, c1 = bc1, c2 = bc2, wd = weight_decay,
            gs = grad_scale;
    for (int64_t i = b; i < e; ++i)
      adam_update<T>(pp[i], gs * gg[i], mm[i], vv[i], lr_, b1, b2, eps_, c1, c2, wd);
  });
}

template <class T>
double sum_squares(const T* x, int64_t n) {
  const int64_t blocks = (n + kGrain - 1) / kGrain;
  std::vector<double> part(blocks);
  pool().parallel_for(blocks, [&](int64_t b0, int64_t b1) {
    for (int64_t k = b0; k < b1; ++k) {
      const int64_t i0 = k * kGrain, i1 = i0 + kGrain < n ? i0 + kGrain : n;
      part[k] = sum_in_double(x + i0, i1 - i0, [](T v) { return double(v) * double(v); });
    }
  }, 1);
  double s = 0.0;
  for (double v : part) s += v;
  return s;
}

#define WB_INSTANTIATE(T)                                                                      \
  template void sgd_update_array<T>(T*, const T*, T*, int64_t, T, T, T, T, T*);               \
  template void rmsprop_update_array<T>(T*, const T*, T*, int64_t, T, T, T, T, T, T*);        \
  template void adam_update_array<T>(T*, const T*, T*, T*, int64_t, T, T, T, T, T, T, T, T,   \
                                     T*);                                                      \
  template double sum_squares<T>(const T*, int64_t);
WB_INSTANTIATE(float)
WB_INSTANTIATE(double)
#undef WB_INSTANTIATE

}  // namespace wb
