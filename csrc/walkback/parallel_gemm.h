// A product split into column slices over walkback's pool: each thread makes one
// single-threaded BLAS call for its slice of C, then runs `epilogue(j0, j1)` on that slice while
// it is still in cache (bias + activation, or sampling + the next corruption).
#pragma once
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "walkback/blas.h"
#include "walkback/packed_gemm.h"
#include "walkback/thread_pool.h"
#include "walkback/workspace.h"

namespace wb {

// Calls f(j0, j1) on slices of [0, n) whose inner boundaries are multiples of `align` (so a
// slice never splits a Philox block of 4 units when align is a multiple of 4). The slices are
// handed out dynamically, a few per thread: a thread whose core is shared (with NumPy's
// spinning BLAS workers, say) takes fewer, instead of holding the others at the barrier.
// by_shape (for slices that make BLAS calls): the slices depend on n and slicing_threads()
// only, not on the pool's size (thread_pool.h). Loops whose result does not depend on the
// cut (walkback's own kernels, sums over rows in order) pass false and use every thread.
template <class F>
void parallel_columns(int64_t n, int64_t align, int64_t min_cols, int64_t per_thread, F&& f,
                      bool by_shape = true) {
  ThreadPool& tp = pool();
  const int64_t blocks = (n + align - 1) / align;
  int64_t chunks = n / (min_cols > 0 ? min_cols : 1);
  const int64_t threads = by_shape ? slicing_threads() : tp.size();
  const int64_t most = threads > 1 ? per_thread * threads : 1;
  if (chunks > most) chunks = most;
  if (chunks > blocks) chunks = blocks;
  if (chunks < 1) chunks = 1;
  const int64_t jobs = chunks < tp.size() ? chunks : tp.size();
  std::atomic<int64_t> next{0};
  tp.parallel_for(jobs, [&](int64_t, int64_t) {
    for (int64_t j = next.fetch_add(1); j < chunks; j = next.fetch_add(1)) {
      const int64_t c0 = blocks * j / chunks * align;
      int64_t c1 = blocks * (j + 1) / chunks * align;
      if (c1 > n) c1 = n;
      if (c1 > c0) f(c0, c1);
    }
  });
}

// f(r0, r1) on contiguous slices of the rows [0, n), at least min_rows each, cut by shape as
// parallel_columns cuts: for row slices whose work makes BLAS calls (pool().parallel_for's
// slices follow the pool's size).
template <class F>
void parallel_rows(int64_t n, int64_t min_rows, F&& f) {
  parallel_columns(n, 1, min_rows, 1, std::forward<F>(f));
}

// How many column slices per thread: more than one balances the load, but each slice's call
// packs all of A (m x k), which pays only while m is small: 4 per thread up to m = 256, 1 from
// m = 1024, and 1 for a GEMV, whose cost is mostly the synchronisation.
inline int64_t slices_per_thread(int64_t m) {
  return m < 16 ? 1 : std::clamp<int64_t>(1024 / m, 1, 4);
}

// C[:, j0:j1] = op(A) op(B)[:, j0:j1] for each slice, then epilogue(j0, j1). Row-major;
// op(A) is m x k; B is k x n (trans_b false) or n x k (trans_b true).
template <class T, class Epilogue>
void gemm_columns(bool trans_b, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
                  const T* b, int64_t ldb, T* c, int64_t ldc, int64_t align, Epilogue&& epilogue) {
  // Slices of at least 64 columns keep each call's packing of B small next to its arithmetic.
  parallel_columns(n, align, 64, slices_per_thread(m), [&](int64_t j0, int64_t j1) {
    const T* bj = trans_b ? b + j0 * ldb : b + j0;
    if (m == 1)
      blas::gemv(!trans_b, trans_b ? static_cast<int>(j1 - j0) : static_cast<int>(k),
                 trans_b ? static_cast<int>(k) : static_cast<int>(j1 - j0), T(1), bj,
                 static_cast<int>(ldb), a, T(0), c + j0);
    else
      blas::gemm(false, trans_b, static_cast<int>(m), static_cast<int>(j1 - j0),
                 static_cast<int>(k), T(1), a, static_cast<int>(lda), bj, static_cast<int>(ldb),
                 T(0), c + j0, static_cast<int>(ldc));
    epilogue(j0, j1);
  });
}

// C = A op(B) by weights packed once (packed_gemm.h), in column slices of whole panels, then
// epilogue(r0, r1, j0, j1) on each block of C as soon as it is final, while it is in L1
// (packed_gemm's BlockDone). Nothing is packed per call, so slices cost nothing extra: four
// per thread, handed out dynamically.
template <class Epilogue>
void packed_gemm_columns(int64_t m, const float* a, int64_t lda, const PackedWeights& w, float* c,
                         int64_t ldc, Epilogue&& epilogue) {
  const BlockDone done = BlockDone::of(epilogue);
  parallel_columns(w.n(), PackedWeights::kPanel, 64, 4, [&](int64_t j0, int64_t j1) {
    packed_gemm(m, a, lda, w, c, ldc, j0, j1, false, &done);
  }, false);
}

// gemm_columns, through packed_gemm_columns when `packed` holds op(B) already packed (float
// only; its panels are whole multiples of any align up to 32). epilogue(r0, r1, j0, j1) runs
// on blocks that tile C, each once it is final: whole column slices after the BLAS's
// product, a few rows by a few panels after walkback's kernel.
template <class T, class Epilogue>
void weight_gemm_columns(const PackedWeights* packed, bool trans_b, int64_t m, int64_t n,
                         int64_t k, const T* a, int64_t lda, const T* b, int64_t ldb, T* c,
                         int64_t ldc, int64_t align, Epilogue&& epilogue) {
  if constexpr (std::is_same_v<T, float>) {
    if (packed && !packed->empty() && m > 1 && PackedWeights::kPanel % align == 0) {
      if (packed->k() != k || packed->n() != n)
        throw std::logic_error("weight_gemm_columns: the packed weights have another shape");
      return packed_gemm_columns(m, a, lda, *packed, c, ldc, epilogue);
    }
  }
  gemm_columns<T>(trans_b, m, n, k, a, lda, b, ldb, c, ldc, align,
                  [&](int64_t j0, int64_t j1) { epilogue(int64_t(0), m, j0, j1); });
}

// One term op(A) op(B) of a sum of products: A is m x k row-major (lda); B is k x n, or n x k
// when trans_b. A null `a` is a zero term. `packed`, when set, holds op(B) packed for
// packed_gemm (float only), which then does this term for more than one row.
template <class T>
struct GemmTerm {
  const T* a = nullptr;
  int64_t lda = 0, k = 0;
  const T* b = nullptr;
  int64_t ldb = 0;
  bool trans_b = false;
  const PackedWeights* packed = nullptr;
};

// Whether packed_gemm does this term: its weights are packed and there is more than one row
// (one row takes the BLAS's GEMV, which streams the weights once).
template <class T>
bool packed_term(const GemmTerm<T>& g, int64_t m) {
  if (!(std::is_same_v<T, float> && g.packed && !g.packed->empty() && g.a && m > 1)) return false;
  if (g.packed->k() != g.k)
    throw std::logic_error("gemm_sum_columns: a term's packed weights have another k");
  return true;
}

// C = sum of the terms (at most two), column slice by column slice, then epilogue(j0, j1) on
// the slice while it is in cache; C is zero where every term is. With a packed term the slices
// are whole panels.
template <class T, class Epilogue>
void gemm_sum_columns(int64_t m, int64_t n, const GemmTerm<T>* terms, int count, T* c,
                      int64_t ldc, int64_t align, Epilogue&& epilogue) {
  bool any_packed = false, all_packed = true;
  for (int t = 0; t < count; ++t) {
    if (!terms[t].a || terms[t].k == 0) continue;  // a zero term makes no call
    const bool p = packed_term(terms[t], m);
    any_packed |= p;
    all_packed &= p;
  }
  if (any_packed) align = std::max<int64_t>(align, PackedWeights::kPanel);
  parallel_columns(n, align, 64, any_packed ? 4 : slices_per_thread(m), [&](int64_t j0, int64_t j1) {
    T beta = T(0);
    for (int t = 0; t < count; ++t) {
      const GemmTerm<T>& g = terms[t];
      if (!g.a || g.k == 0) continue;
      const T* bj = g.trans_b ? g.b + j0 * g.ldb : g.b + j0;
      const int w = static_cast<int>(j1 - j0), k = static_cast<int>(g.k);
      if constexpr (std::is_same_v<T, float>) {
        if (packed_term(g, m)) {
          packed_gemm(m, g.a, g.lda, *g.packed, c, ldc, j0, j1, beta != T(0));
          beta = T(1);
          continue;
        }
      }
      if (m == 1)  // one chain: a GEMV streams the weights once, without packing them
        blas::gemv(!g.trans_b, g.trans_b ? w : k, g.trans_b ? k : w, T(1), bj,
                   static_cast<int>(g.ldb), g.a, beta, c + j0);
      else
        blas::gemm(false, g.trans_b, static_cast<int>(m), w, k, T(1), g.a,
                   static_cast<int>(g.lda), bj, static_cast<int>(g.ldb), beta, c + j0,
                   static_cast<int>(ldc));
      beta = T(1);
    }
    if (beta == T(0))
      for (int64_t r = 0; r < m; ++r)
        for (int64_t j = j0; j < j1; ++j) c[r * ldc + j] = T(0);
    epilogue(j0, j1);
  }, /*by_shape=*/!all_packed);  // walkback's kernel gives the same bits for any cut
}

// packed_gemm_tn's pack of G, kept by the calling thread between calls (a type of its own, so
// that no caller's KeptWorkspace<PackedLayer> is the same object).
struct GradientPack {
  PackedWeights g;
  size_t bytes() const { return g.bytes(); }
};

// C = A^T op(G), or C += when accumulate, through walkback's kernel: op(G) (rows x n; G is
// given n x rows when trans_g) packed once, A (rows x ma, lda) read where it lies
// (packed_gemm_at); column panels of C on the pool, or its rows where C has too few columns
// to share. Each element is one chain of FMAs in k order: the same bits for any cut. Callers
// check packed_gemm_supported().
inline void packed_gemm_tn(int64_t rows, int64_t ma, int64_t n, const float* a, int64_t lda,
                           const float* g, int64_t ldg, bool trans_g, float* c, int64_t ldc,
                           bool accumulate) {
  KeptWorkspace<GradientPack> kept;
  PackedWeights& w = kept->g;
  w.pack(g, ldg, trans_g, rows, n);
  if (n < 64 * pool().size() && ma >= 128) {
    parallel_columns(ma, 16, 64, 4, [&](int64_t i0, int64_t i1) {
      packed_gemm_at(i1 - i0, a + i0, lda, w, c + i0 * ldc, ldc, 0, n, accumulate);
    }, false);
  } else {
    parallel_columns(n, PackedWeights::kPanel, 64, 4, [&](int64_t j0, int64_t j1) {
      packed_gemm_at(ma, a, lda, w, c, ldc, j0, j1, accumulate);
    }, false);
  }
}

// C = A^T G + beta C over `rows` stacked rows (A: rows x ma, G: rows x n), column slices in
// parallel: the weight gradient of a layer from its inputs and its pre-activation gradients.
// Where prefer_packed_gemm() (float), through packed_gemm_tn.
template <class T>
void gemm_tn_accumulate(int64_t rows, int64_t ma, int64_t n, const T* a, int64_t lda,
                        const T* g, int64_t ldg, T* c, int64_t ldc, T beta = T(1)) {
  if (rows == 0) {
    if (beta == T(0))
      for (int64_t i = 0; i < ma; ++i)
        for (int64_t j = 0; j < n; ++j) c[i * ldc + j] = T(0);
    return;
  }
  if constexpr (std::is_same_v<T, float>) {
    if ((beta == 0.0f || beta == 1.0f) && rows >= 16 && ma >= 16 && n >= 16 &&
        prefer_packed_gemm())
      return packed_gemm_tn(rows, ma, n, a, lda, g, ldg, false, c, ldc, beta == 1.0f);
  }
  if (n < 64 * slicing_threads() && ma >= 128) {
    // Too few columns of C to share (a network's narrow head): slices of its rows instead.
    parallel_columns(ma, 16, 64, 1, [&](int64_t i0, int64_t i1) {
      blas::gemm(true, false, static_cast<int>(i1 - i0), static_cast<int>(n),
                 static_cast<int>(rows), T(1), a + i0, static_cast<int>(lda), g,
                 static_cast<int>(ldg), beta, c + i0 * ldc, static_cast<int>(ldc));
    });
    return;
  }
  parallel_columns(n, 16, 64, slices_per_thread(ma), [&](int64_t j0, int64_t j1) {
    blas::gemm(true, false, static_cast<int>(ma), static_cast<int>(j1 - j0),
               static_cast<int>(rows), T(1), a, static_cast<int>(lda), g + j0,
               static_cast<int>(ldg), beta, c + j0, static_cast<int>(ldc));
  });
}

}  // namespace wb
