#include "walkback/blas.h"

#include <cblas.h>

#include <algorithm>
#include <cctype>
#include <mutex>

#include "walkback/thread_pool.h"

namespace wb::blas {
namespace {

std::once_flag g_init;

CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

}  // namespace

// OpenBLAS runs single-threaded: walkback splits each product into column slices over its own
// pool (thread_pool.h), one BLAS call per thread, with the elementwise work on each slice done
// in the same job while it is in cache. OpenBLAS's own threads spin ~0.1 s after every call
// and fight NumPy's pool; its thread callback (openblas_set_threads_callback_function) leaves
// one of its server threads spinning for good (measured with 0.3.34: exec_threads marks the
// server's queue busy and it never sleeps again), so neither is used.
void init() {
  std::call_once(g_init, [] { scipy_openblas_set_num_threads(1); });
}

void set_num_threads(int n) {
  init();
  wb::set_num_threads(n);
}

void gemm(bool ta, bool tb, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  init();
  scipy_cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemm(bool ta, bool tb, int m, int n, int k, double alpha, const double* a, int lda,
          const double* b, int ldb, double beta, double* c, int ldc) {
  init();
  scipy_cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void gemv(bool t, int m, int n, float alpha, const float* a, int lda, const float* x, float beta,
          float* y) {
  init();
  scipy_cblas_sgemv(CblasRowMajor, tr(t), m, n, alpha, a, lda, x, 1, beta, y, 1);
}

void gemv(bool t, int m, int n, double alpha, const double* a, int lda, const double* x,
          double beta, double* y) {
  init();
  scipy_cblas_dgemv(CblasRowMajor, tr(t), m, n, alpha, a, lda, x, 1, beta, y, 1);
}

std::string describe() {
  init();
  std::string s = "OpenBLAS (scipy-openblas32, one thread per call) ";
  s += scipy_openblas_get_config();
  s += ", core ";
  s += scipy_openblas_get_corename();
  return s;
}

bool avx512_kernels() {
  // OpenBLAS picks its core once, when it loads: read its name once.
  static const bool wide = [] {
    init();
    std::string core = scipy_openblas_get_corename();
    std::transform(core.begin(), core.end(), core.begin(),
                   [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
    for (const char* name : {"skylakex", "cooperlake", "sapphirerapids"})
      if (core.find(name) != std::string::npos) return true;
    return false;
  }();
  return wide;
}

}  // namespace wb::blas
