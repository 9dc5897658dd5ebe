#include "walkback/blas.h"

#include <cblas.h>

#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "walkback/thread_pool.h"

namespace wb::blas {
namespace {

struct CallbackJob {
  openblas_dojob_callback dojob;
  char* data;
  size_t elsize;
  int dojob_data;
};

// OpenBLAS hands us its parallel section: numjobs jobs that may wait for each other, so each
// gets its own thread of the pool.
void run_openblas_jobs(int /*sync*/, openblas_dojob_callback dojob, int numjobs,
                       size_t jobdata_elsize, void* jobdata, int dojob_data) {
  if (numjobs > 1 && ThreadPool::in_job()) {
    // Never reached by walkback's own code (no BLAS call happens inside a pool job); running
    // inter-dependent jobs serially would hang, so fail loudly instead.
    std::fprintf(stderr, "walkback: BLAS called with %d jobs from inside a pool job\n", numjobs);
    std::abort();
  }
  CallbackJob job{dojob, static_cast<char*>(jobdata), jobdata_elsize, dojob_data};
  ThreadPool& p = pool();
  auto fn = [](void* ctx, int j) {
    auto* c = static_cast<CallbackJob*>(ctx);
    c->dojob(j, c->data + static_cast<size_t>(j) * c->elsize, c->dojob_data);
  };
  if (numjobs <= p.size()) {
    p.run(numjobs, fn, &job);
  } else {
    ThreadPool extra(numjobs);  // only if OpenBLAS asks for more than we set; correct, slow
    extra.run(numjobs, fn, &job);
  }
}

std::once_flag g_init;

CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }

}  // namespace

void init() {
  std::call_once(g_init, [] {
    scipy_openblas_set_threads_callback_function(run_openblas_jobs);
    scipy_openblas_set_num_threads(pool().size());
  });
}

void set_num_threads(int n) {
  init();
  wb::set_num_threads(n);
  scipy_openblas_set_num_threads(n);
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
  std::string s = "OpenBLAS (scipy-openblas32) ";
  s += scipy_openblas_get_config();
  s += ", core ";
  s += scipy_openblas_get_corename();
  return s;
}

}  // namespace wb::blas
