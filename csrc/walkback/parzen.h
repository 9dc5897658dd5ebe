// Log-sum-exp over a matrix product, streamed in blocks so memory stays bounded: the kernel of
// Parzen-window log-likelihoods (Breuleux et al. 2011, as used by the GSN and GAN papers) and of
// the CSL estimator (Bengio, Yao & Cho 2013) for Bernoulli visibles.
#pragma once
#include <cstdint>

namespace wb {

// out[j] = row_term[j] + log sum_i exp(scale * (a_j . b_i) + col_term[i]) for j < M, with a
// (M, D) and b (N, D) row-major. Blocks of rows of a go to the threads; each streams over
// blocks of b with a running (max, sum) per row, so nothing of size M x N is stored.
template <class T>
void gemm_logsumexp(const T* a, int64_t M, const T* b, int64_t N, int64_t D, T scale,
                    const T* col_term, const double* row_term, double* out);

// log p(x_j) under the isotropic Gaussian mixture with centres s_i and width sigma:
// logsumexp_i(-|x_j - s_i|^2 / (2 sigma^2)) - log N - (D / 2) log(2 pi sigma^2).
template <class T>
void parzen_logpdf(const T* s, int64_t N, const T* x, int64_t M, int64_t D, double sigma,
                   double* out);

}  // namespace wb
