#include "walkback/packed_gemm.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>
#include <utility>

#include "walkback/thread_pool.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WB_HAVE_AVX512_GEMM 1
#define WB_AVX512 __attribute__((target("avx512f,fma")))
#endif

namespace wb {

namespace {

// Rows of B (k x n) into one panel: a fixed-width copy per row (no memcpy call per 128 bytes,
// which took half of a pack).
void pack_panel(const float* b, int64_t ldb, int64_t w, int64_t k, float* p) {
  constexpr int64_t P = PackedWeights::kPanel;
  if (w == P) {
    for (int64_t kk = 0; kk < k; ++kk) {
      const float* src = b + kk * ldb;
      float* dst = p + kk * P;
      for (int64_t j = 0; j < P; ++j) dst[j] = src[j];
    }
    return;
  }
  for (int64_t kk = 0; kk < k; ++kk)
    for (int64_t j = 0; j < P; ++j) p[kk * P + j] = j < w ? b[kk * ldb + j] : 0.0f;
}

// w rows of B (n x k) as the columns of one panel, in blocks of 16 of k so that both the rows
// read and the panel rows written stay in L1. Measured for W of 784 x 1000 on two threads:
// 0.37 ms (the plain copy of the other orientation: 0.19 ms); OpenBLAS's omatcopy, panel by
// panel, took about twice as long.
void pack_transposed_panel(const float* b, int64_t ldb, int64_t w, int64_t k, float* p) {
  constexpr int64_t P = PackedWeights::kPanel, kBlock = 16;
  for (int64_t k0 = 0; k0 < k; k0 += kBlock) {
    const int64_t k1 = std::min(k, k0 + kBlock);
    for (int64_t j = 0; j < P; ++j) {
      if (j >= w) {
        for (int64_t kk = k0; kk < k1; ++kk) p[kk * P + j] = 0.0f;
        continue;
      }
      const float* src = b + j * ldb;
      for (int64_t kk = k0; kk < k1; ++kk) p[kk * P + j] = src[kk];
    }
  }
}

}  // namespace

void PackedWeights::pack(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n) {
  const int64_t panels = (n + kPanel - 1) / kPanel;
  const int64_t need = panels * k * kPanel;
  if (need > capacity_) {
    data_.reset();
    void* p = std::aligned_alloc(64, ((need * sizeof(float) + 63) / 64) * 64);
    if (!p) throw std::bad_alloc();
    data_.reset(static_cast<float*>(p));
    capacity_ = need;
  }
  k_ = k;
  n_ = n;
  float* out = data_.get();
  pool().parallel_for(panels, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t c0 = q * kPanel, w = std::min(kPanel, n - c0);
      if (trans)
        pack_transposed_panel(b + c0 * ldb, ldb, w, k, out + q * k * kPanel);
      else
        pack_panel(b + c0, ldb, w, k, out + q * k * kPanel);
    }
  });
}

#ifdef WB_HAVE_AVX512_GEMM
namespace {

// An MR x 32 tile of C over kc rows of a panel: 2 MR accumulators, one broadcast of A per row
// and unit of k, two loads of the panel per unit of k. MR = 12 uses 24 of the 32 registers.
template <int MR>
WB_AVX512 void tile(int64_t kc, const float* a, int64_t lda, const float* bp, float* c,
                    int64_t ldc, __mmask16 m0, __mmask16 m1, bool accumulate) {
  __m512 c0[MR], c1[MR];
  for (int i = 0; i < MR; ++i) {
    c0[i] = _mm512_setzero_ps();
    c1[i] = _mm512_setzero_ps();
  }
#pragma GCC unroll 4
  for (int64_t kk = 0; kk < kc; ++kk) {
    const __m512 b0 = _mm512_load_ps(bp + kk * 32), b1 = _mm512_load_ps(bp + kk * 32 + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR; ++i) {
      const __m512 ai = _mm512_set1_ps(a[i * lda + kk]);
      c0[i] = _mm512_fmadd_ps(ai, b0, c0[i]);
      c1[i] = _mm512_fmadd_ps(ai, b1, c1[i]);
    }
  }
  for (int i = 0; i < MR; ++i) {
    float* ci = c + i * ldc;
    if (accumulate) {
      c0[i] = _mm512_add_ps(c0[i], _mm512_maskz_loadu_ps(m0, ci));
      c1[i] = _mm512_add_ps(c1[i], _mm512_maskz_loadu_ps(m1, ci + 16));
    }
    _mm512_mask_storeu_ps(ci, m0, c0[i]);
    _mm512_mask_storeu_ps(ci + 16, m1, c1[i]);
  }
}

constexpr int kMr = 12;
using TileFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, __mmask16,
                        __mmask16, bool);
template <int... I>
constexpr std::array<TileFn, sizeof...(I)> tiles(std::integer_sequence<int, I...>) {
  return {&tile<I + 1>...};
}
constexpr auto kTiles = tiles(std::make_integer_sequence<int, kMr>{});

// Rows in blocks of kMc: a block of A (kMc x k) stays in L2 while every panel of the slice
// passes over it. K in blocks of kKc only past kKcMax, so C is written once for the usual k.
constexpr int64_t kMc = 192, kKcMax = 1024, kKc = 512;

}  // namespace
#endif

namespace {
bool detect() {
#ifdef WB_HAVE_AVX512_GEMM
  const char* env = std::getenv("WALKBACK_PACKED_GEMM");
  if (env && env[0] == '0') return false;
  return __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}
const bool g_supported = detect();
std::atomic<bool> g_enabled{true};
}  // namespace

bool packed_gemm_supported() { return g_supported && g_enabled.load(std::memory_order_relaxed); }

bool set_packed_gemm(bool on) {
  g_enabled.store(on, std::memory_order_relaxed);
  return packed_gemm_supported();
}

void packed_gemm(int64_t m, const float* a, int64_t lda, const PackedWeights& b, float* c,
                 int64_t ldc, int64_t j0, int64_t j1, bool accumulate) {
#ifdef WB_HAVE_AVX512_GEMM
  constexpr int64_t P = PackedWeights::kPanel;
  if (j0 % P != 0 || j1 > b.n() || j0 > j1)
    throw std::invalid_argument("packed_gemm: columns must start on a panel, within n");
  const int64_t k = b.k();
  const int64_t kc_step = k <= kKcMax ? std::max<int64_t>(k, 1) : kKc;
  if (k == 0) {
    if (!accumulate)
      for (int64_t r = 0; r < m; ++r) std::fill(c + r * ldc + j0, c + r * ldc + j1, 0.0f);
    return;
  }
  for (int64_t k0 = 0; k0 < k; k0 += kc_step) {
    const int64_t kc = std::min(kc_step, k - k0);
    const bool acc = accumulate || k0 > 0;
    for (int64_t i0 = 0; i0 < m; i0 += kMc) {
      const int64_t i1 = std::min(m, i0 + kMc);
      for (int64_t c0 = j0; c0 < j1; c0 += P) {
        const int64_t w = std::min(P, j1 - c0);
        const __mmask16 m0 = w >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << w) - 1);
        const __mmask16 m1 =
            w >= 32 ? 0xFFFF : w > 16 ? static_cast<__mmask16>((1u << (w - 16)) - 1) : 0;
        const float* bq = b.panel(c0 / P) + k0 * P;
        for (int64_t i = i0; i < i1; i += kMr) {
          const int64_t mr = std::min<int64_t>(kMr, i1 - i);
          kTiles[mr - 1](kc, a + i * lda + k0, lda, bq, c + i * ldc + c0, ldc, m0, m1, acc);
        }
      }
    }
  }
#else
  (void)m, (void)a, (void)lda, (void)b, (void)c, (void)ldc, (void)j0, (void)j1, (void)accumulate;
  throw std::logic_error("packed_gemm: not built for this processor");
#endif
}

}  // namespace wb
