#include "walkback/conv1d.h"

#include <algorithm>
#include <stdexcept>
#include <vector>

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
                    const T* b, T* cols, T* y) {
  im2col<T>(s, c, x, ldx, cols);
  const int64_t rows = s.rows();
  gemm_columns<T>(false, rows, c.F, c.taps(), cols, c.taps(), W, c.F, y, c.F, 16,
                  [&](int64_t j0, int64_t j1) {
                    for (int64_t n = 0; n < s.N; ++n) {
                      const int64_t len = s.len(n);
                      for (int64_t l = 0; l < s.L; ++l) {
                        T* yr = y + (n * s.L + l) * c.F;
                        for (int64_t j = j0; j < j1; ++j)
                          yr[j] = l < len ? yr[j] + (b ? b[j] : T(0)) : T(0);
                      }
                    }
                  });
}

template <class T>
void conv1d_transpose_add(const SeqShape& s, const Conv1d& c, const T* h, const T* W, T* work,
                          T* out, int64_t ldo) {
  // work = h W^T, one row of taps per position, then scattered back onto the positions.
  gemm_columns<T>(true, s.rows(), c.taps(), c.F, h, c.F, W, c.F, work, c.taps(), 16,
                  [](int64_t, int64_t) {});
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
                                  const T*, const T*, T*, T*);                               \
  template void conv1d_transpose_add<T>(const SeqShape&, const Conv1d&, const T*, const T*,  \
                                        T*, T*, int64_t);                                    \
  template void conv1d_param_grad<T>(const SeqShape&, const Conv1d&, const T*, const T*, T*, \
                                     T*);
WB_CONV1D(float)
WB_CONV1D(double)
#undef WB_CONV1D

}  // namespace wb
