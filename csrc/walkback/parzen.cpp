#include "walkback/parzen.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "walkback/blas.h"
#include "walkback/elementwise.h"
#include "walkback/simd.h"
#include "walkback/thread_pool.h"

namespace wb {
namespace {

// Rows of a per work item and columns (rows of b) per GEMM: a 1024 x 2048 block of products is
// 8 MB per thread in float32 (in L3 while it is reduced); large blocks keep the repacking of a
// and b (once per block pair) small next to the arithmetic (measured: 0.74 of the sgemm time
// with 512 x 1024 blocks, 0.9-1.2 with these).
constexpr int64_t kRows = 1024, kCols = 2048;

// Reductions keep 16 partial results, one per lane: the compiler may not reorder a float sum or
// max by itself, and this fixed order gives the same bits in every SIMD clone.
constexpr int64_t kLanes = 16;

// v[i] = scale * v[i] + col[i]; returns the maximum.
template <class T>
WB_SIMD_CLONES T scale_add_max(T* v, const T* col, T scale, int64_t n) {
  T m[kLanes];
  for (int64_t l = 0; l < kLanes; ++l) m[l] = -INFINITY;
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      const T t = scale * v[i + l] + col[i + l];
      v[i + l] = t;
      m[l] = t > m[l] ? t : m[l];
    }
  for (; i < n; ++i) {
    const T t = scale * v[i] + col[i];
    v[i] = t;
    m[0] = t > m[0] ? t : m[0];
  }
  T out = m[0];
  for (int64_t l = 1; l < kLanes; ++l) out = m[l] > out ? m[l] : out;
  return out;
}

// sum of exp(v[i] - m).
template <class T>
WB_SIMD_CLONES T sum_exp_shifted(const T* v, T m, int64_t n) {
  T s[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) s[l] += wb_exp(v[i + l] - m);
  for (; i < n; ++i) s[0] += wb_exp(v[i] - m);
  T out = T(0);
  for (int64_t l = 0; l < kLanes; ++l) out += s[l];
  return out;
}

}  // namespace

template <class T>
void gemm_logsumexp(const T* a, int64_t M, const T* b, int64_t N, int64_t D, T scale,
                    const T* col_term, const double* row_term, double* out) {
  const int64_t items = (M + kRows - 1) / kRows;
  std::atomic<int64_t> next{0};
  ThreadPool& tp = pool();
  const int64_t jobs = std::min<int64_t>(tp.size(), items);
  tp.parallel_for(jobs, [&](int64_t, int64_t) {
    std::vector<T> g(kRows * kCols);
    std::vector<double> mx(kRows), sm(kRows);
    for (int64_t it = next.fetch_add(1); it < items; it = next.fetch_add(1)) {
      const int64_t r0 = it * kRows, rows = std::min(kRows, M - r0);
      std::fill(mx.begin(), mx.end(), -INFINITY);
      std::fill(sm.begin(), sm.end(), 0.0);
      for (int64_t c0 = 0; c0 < N; c0 += kCols) {
        const int64_t cols = std::min(kCols, N - c0);
        blas::gemm(false, true, static_cast<int>(rows), static_cast<int>(cols),
                   static_cast<int>(D), T(1), a + r0 * D, static_cast<int>(D), b + c0 * D,
                   static_cast<int>(D), T(0), g.data(), static_cast<int>(cols));
        for (int64_t r = 0; r < rows; ++r) {
          T* v = g.data() + r * cols;
          const double bm = static_cast<double>(scale_add_max<T>(v, col_term + c0, scale, cols));
          if (!(bm > -INFINITY)) continue;  // every term of this block is exp(-inf) = 0
          // Running (max, sum): rescale whichever of the old sum and the block's is smaller.
          const double m = std::max(mx[r], bm);
          const double s = static_cast<double>(sum_exp_shifted<T>(v, static_cast<T>(bm), cols));
          sm[r] = sm[r] * std::exp(mx[r] - m) + s * std::exp(bm - m);
          mx[r] = m;
        }
      }
      for (int64_t r = 0; r < rows; ++r) out[r0 + r] = row_term[r0 + r] + mx[r] + std::log(sm[r]);
    }
  });
}

template <class T>
void parzen_logpdf(const T* s_in, int64_t N, const T* x_in, int64_t M, int64_t D, double sigma,
                   double* out) {
  // -|x - s|^2 / (2 sigma^2) = (x . s) / sigma^2 - |s|^2 / (2 sigma^2) - |x|^2 / (2 sigma^2):
  // one GEMM for the cross terms. Both sets are first centred (in double) on the mean of the
  // centres, which leaves the distances unchanged and shrinks the norms whose difference the
  // expansion takes (the rounding error of d^2 is about eps (|x|^2 + |s|^2)).
  const double inv = 1.0 / (2.0 * sigma * sigma);
  if (!(inv > 0.0) || !std::isfinite(inv))
    throw std::invalid_argument("parzen: sigma too small or too large for 1 / (2 sigma^2)");
  const double lognorm = std::log(static_cast<double>(N)) +
                         static_cast<double>(D) * (std::log(sigma) + 0.5 * std::log(2.0 * M_PI));
  std::vector<double> mean(D, 0.0);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t d = 0; d < D; ++d) mean[d] += static_cast<double>(s_in[i * D + d]);
  for (double& v : mean) v /= static_cast<double>(N);
  // Centred squared norms of the centres, to choose the precision from the centres alone (so
  // the choice does not depend on how the points are batched).
  std::vector<double> s_norm(N);
  pool().parallel_for(N, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      double q = 0.0;
      for (int64_t d = 0; d < D; ++d) {
        const double c = static_cast<double>(s_in[i * D + d]) - mean[d];
        q += c * c;
      }
      s_norm[i] = q;
    }
  });
  double qmax = 0.0;
  for (double q : s_norm) qmax = std::max(qmax, q);
  // In float32 the scaled cross terms 2 (x . s) / (2 sigma^2) carry an absolute error of
  // about 2^-24 sqrt(D) |x| |s| / sigma^2. Where that exceeds 2e-5 of the normalising term
  // (so the result keeps a relative error well below 1e-4: narrow windows), the computation
  // runs in float64.
  const double err = std::ldexp(1.0, -24) * qmax * 2.0 * inv * std::sqrt(static_cast<double>(D));
  const bool wide = std::is_same_v<T, double> || err > 2e-5 * std::max(1.0, std::abs(lognorm));
  auto run = [&](auto tag) {
    using U = decltype(tag);
    std::vector<U> s(N * D), x(M * D), col(N);
    std::vector<double> row(M);
    pool().parallel_for(N, [&](int64_t i0, int64_t i1) {
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t d = 0; d < D; ++d)
          s[i * D + d] = static_cast<U>(static_cast<double>(s_in[i * D + d]) - mean[d]);
        col[i] = static_cast<U>(-s_norm[i] * inv);
      }
    });
    pool().parallel_for(M, [&](int64_t j0, int64_t j1) {
      for (int64_t j = j0; j < j1; ++j) {
        double q = 0.0;
        for (int64_t d = 0; d < D; ++d) {
          const double c = static_cast<double>(x_in[j * D + d]) - mean[d];
          x[j * D + d] = static_cast<U>(c);
          q += c * c;
        }
        row[j] = -q * inv - lognorm;
      }
    });
    gemm_logsumexp<U>(x.data(), M, s.data(), N, D, static_cast<U>(2.0 * inv), col.data(),
                      row.data(), out);
  };
  if (wide)
    run(double{});
  else
    run(float{});
}

template void gemm_logsumexp<float>(const float*, int64_t, const float*, int64_t, int64_t, float,
                                    const float*, const double*, double*);
template void gemm_logsumexp<double>(const double*, int64_t, const double*, int64_t, int64_t,
                                     double, const double*, const double*, double*);
template void parzen_logpdf<float>(const float*, int64_t, const float*, int64_t, int64_t, double,
                                   double*);
template void parzen_logpdf<double>(const double*, int64_t, const double*, int64_t, int64_t,
                                    double, double*);

}  // namespace wb
