#include "walkback/conv1d.h"

#include <algorithm>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "walkback/blas.h"
#include "walkback/dense_mlp.h"
#include "walkback/parallel_gemm.h"
#include "walkback/thread_pool.h"

namespace wb {
namespace {

void check(const SeqShape& s, const Conv1d& c) {
  if (c.width < 1 || c.width % 2 == 0) throw std::invalid_argument("conv1d: width must be odd");
  if (c.C < 1 || c.F < 1) throw std::invalid_argument("conv1d: channels must be positive");
  for (int64_t n = 0; s.lengths && n < s.N; ++n)
    if (s.lengths[n] < 0 || s.lengths[n] > s.L)
      throw std::invalid_argument("conv1d: a length is outside [0, L]");
}

// C (m x n) = A (m x k) op(B), where B is (k x n), or (n x k) when trans_b: slices of rows
// on the pool when there are many more rows than columns (each thread then packs only its own
// rows of A; column slices would pack all of A in every thread), else slices of columns.
// With `packed` (op(B) packed for walkback's kernel, float only) nothing is packed per call,
// and each row's bits do not depend on the slices, so every thread takes a few.
// epilogue(r0, r1, j0, j1) runs on each finished block.
template <class T, class Epilogue>
void gemm_rows_or_columns(bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, const T* b,
                          T* c, const PackedWeights* packed, Epilogue&& epilogue) {
  if constexpr (std::is_same_v<T, float>) {
    if (packed && !packed->empty()) {
      if (packed->k() != k || packed->n() != n)
        throw std::logic_error("conv1d: the packed weights have another shape");
      if (m >= 4 * n) {
        parallel_columns(m, 1, 64, 4, [&](int64_t r0, int64_t r1) {
          packed_gemm(r1 - r0, a + r0 * k, k, *packed, c + r0 * n, n, 0, n, false);
          epilogue(r0, r1, int64_t(0), n);
        }, false);
      } else {
        packed_gemm_columns(m, a, k, *packed, c, n, epilogue);
      }
      return;
    }
  }
  if (m >= 4 * n) {
    parallel_rows(m, 64, [&](int64_t r0, int64_t r1) {
      blas::gemm(false, trans_b, static_cast<int>(r1 - r0), static_cast<int>(n),
                 static_cast<int>(k), T(1), a + r0 * k, static_cast<int>(k), b,
                 static_cast<int>(trans_b ? k : n), T(0), c + r0 * n, static_cast<int>(n));
      epilogue(r0, r1, int64_t(0), n);
    });
  } else {
    gemm_columns<T>(trans_b, m, n, k, a, k, b, trans_b ? k : n, c, n, 16,
                    [&](int64_t j0, int64_t j1) { epilogue(int64_t(0), m, j0, j1); });
  }
}

}  // namespace

template <class T>
void im2col(const SeqShape& s, const Conv1d& c, const T* x, int64_t ldx, T* cols) {
  check(s, c);
  const int64_t half = c.width / 2, taps = c.taps();
  pool().parallel_for(s.N, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t len = s.len(n);
      for (int64_t l = 0; l < s.L; ++l) {
        T* row = cols + (n * s.L + l) * taps;
        for (int64_t k = 0; k < c.width; ++k) {
          const int64_t src = l + k - half;
          T* dst = row + k * c.C;
          if (l >= len || src < 0 || src >= len) {
            std::fill(dst, dst + c.C, T(0));
          } else {
            const T* xs = x + (n * s.L + src) * ldx;
            std::copy(xs, xs + c.C, dst);
          }
        }
      }
    }
  });
}

template <class T>
void col2im_add(const SeqShape& s, const Conv1d& c, const T* g, T* out, int64_t ldo) {
  check(s, c);
  const int64_t half = c.width / 2, taps = c.taps();
  // Sequences are independent, so threads split them and no two write one row.
  pool().parallel_for(s.N, [&](int64_t n0, int64_t n1) {
    for (int64_t n = n0; n < n1; ++n) {
      const int64_t len = s.len(n);
      for (int64_t l = 0; l < len; ++l) {
        const T* row = g + (n * s.L + l) * taps;
        for (int64_t k = 0; k < c.width; ++k) {
          const int64_t dst = l + k - half;
          if (dst < 0 || dst >= len) continue;
          T* o = out + (n * s.L + dst) * ldo;
          const T* gk = row + k * c.C;
          for (int64_t i = 0; i < c.C; ++i) o[i] += gk[i];
        }
      }
    }
  });
}

template <class T>
void conv1d_forward(const SeqShape& s, const Conv1d& c, const T* x, int64_t ldx, const T* W,
                    const T* b, T* cols, T* y, const PackedWeights* packed) {
  im2col<T>(s, c, x, ldx, cols);
  gemm_rows_or_columns<T>(false, s.rows(), c.F, c.taps(), cols, W, y, packed,
                          [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
                            // The bias test out of the loop: a null b read under a
                            // mask is slow (sample_row in row_kernels.h).
                            for (int64_t r = r0; r < r1; ++r) {
                              T* yr = y + r * c.F;
                              if (!(r % s.L < s.len(r / s.L)))
                                std::fill(yr + j0, yr + j1, T(0));
                              else if (b)
                                for (int64_t j = j0; j < j1; ++j) yr[j] += b[j];
                            }
                          });
}

template <class T>
void conv1d_transpose_add(const SeqShape& s, const Conv1d& c, const T* h, const T* W, T* work,
                          T* out, int64_t ldo, const PackedWeights* packed) {
  // work = h W^T, one row of taps per position, then scattered back onto the positions.
  gemm_rows_or_columns<T>(true, s.rows(), c.taps(), c.F, h, W, work, packed,
                          [](int64_t, int64_t, int64_t, int64_t) {});
  col2im_add<T>(s, c, work, out, ldo);
}

template <class T>
void conv1d_param_grad(const SeqShape& s, const Conv1d& c, const T* cols, const T* dy, T* dW,
                       T* db) {
  gemm_tn_accumulate<T>(s.rows(), c.taps(), c.F, cols, c.taps(), dy, c.F, dW, c.F);
  if (db) {
    std::vector<T> sums(c.F);
    column_sums<T>(dy, s.rows(), c.F, c.F, sums.data());
    for (int64_t j = 0; j < c.F; ++j) db[j] += sums[j];
  }
}

#define WB_CONV1D(T)                                                                         \
  template void im2col<T>(const SeqShape&, const Conv1d&, const T*, int64_t, T*);            \
  template void col2im_add<T>(const SeqShape&, const Conv1d&, const T*, T*, int64_t);        \
  template void conv1d_forward<T>(const SeqShape&, const Conv1d&, const T*, int64_t,         \
                                  const T*, const T*, T*, T*, const PackedWeights*);         \
  template void conv1d_transpose_add<T>(const SeqShape&, const Conv1d&, const T*, const T*,  \
                                        T*, T*, int64_t, const PackedWeights*);              \
  template void conv1d_param_grad<T>(const SeqShape&, const Conv1d&, const T*, const T*, T*, \
                                     T*);
WB_CONV1D(float)
WB_CONV1D(double)
#undef WB_CONV1D

}  // namespace wb
