// The optimizers' updates over whole parameter arrays, in place and in parallel (the maths of
// one element is in elementwise.h, shared with the CUDA kernels), and the gradient norm that
// clipping needs. Every update first multiplies the gradient by grad_scale, so clipping costs
// no pass of its own (a scale of 1 changes nothing, bit for bit).
#pragma once
#include <cstdint>

namespace wb {

template <class T>
void sgd_update_array(T* p, const T* g, T* v, int64_t n, T lr, T momentum, T weight_decay,
                      T grad_scale = T(1), T* backup = nullptr);
template <class T>
void rmsprop_update_array(T* p, const T* g, T* v, int64_t n, T lr, T rho, T eps, T weight_decay,
                          T grad_scale = T(1), T* backup = nullptr);
template <class T>
void adam_update_array(T* p, const T* g, T* m, T* v, int64_t n, T lr, T beta1, T beta2, T eps,
                       T bc1, T bc2, T weight_decay, T grad_scale = T(1), T* backup = nullptr);

// The sum of x[i]^2 in double, over fixed blocks summed in order: the same result for any
// number of threads.
template <class T>
double sum_squares(const T* x, int64_t n);

}  // namespace wb
