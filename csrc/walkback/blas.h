// The one GEMM path of walkback: row-major wrappers over the scipy-openblas32 CBLAS, called
// single-threaded; parallelism comes from splitting the product over walkback's pool
// (gemm_columns in parallel_gemm.h).
#pragma once
#include <string>

namespace wb::blas {

// Makes OpenBLAS single-threaded (walkback's pool does the splitting). Idempotent.
void init();
void set_num_threads(int n);

// C = alpha op(A) op(B) + beta C, all row-major; op(A) is M x K, op(B) is K x N.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc);
void gemm(bool trans_a, bool trans_b, int m, int n, int k, double alpha, const double* a,
          int lda, const double* b, int ldb, double beta, double* c, int ldc);

// y = alpha op(A) x + beta y, A row-major M x N.
void gemv(bool trans, int m, int n, float alpha, const float* a, int lda, const float* x,
          float beta, float* y);
void gemv(bool trans, int m, int n, double alpha, const double* a, int lda, const double* x,
          double beta, double* y);

// "OpenBLAS 0.3.x <config> (core: Haswell)".
std::string describe();

// Whether OpenBLAS runs AVX-512 kernels (its core is SkylakeX, Cooperlake or SapphireRapids).
// False on an AVX-512 processor too where OPENBLAS_CORETYPE names an older core, or where
// OpenBLAS maps the processor to one.
bool avx512_kernels();

}  // namespace wb::blas
