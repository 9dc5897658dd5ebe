#include "walkback/packed_gemm.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

#include <unistd.h>

#include "walkback/blas.h"
#include "walkback/thread_pool.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WB_HAVE_X86_GEMM 1
#define WB_AVX512 __attribute__((target("avx512f,fma")))
#define WB_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace wb {

namespace {
bool cpu_has(PackedIsa isa) {
#ifdef WB_HAVE_X86_GEMM
  switch (isa) {
    case PackedIsa::Avx512: return __builtin_cpu_supports("avx512f");
    case PackedIsa::Avx2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case PackedIsa::None: return true;
  }
#endif
  return isa == PackedIsa::None;
}
// The instruction set new packs use: the widest the processor has, or the environment's
// WALKBACK_PACKED_GEMM: "0" (off), "avx2" (AVX2 even where AVX-512 is there).
PackedIsa detect() {
#ifdef WB_HAVE_X86_GEMM
  __builtin_cpu_init();  // this runs in a static initialiser, perhaps before libgcc's own
#endif
  const char* env = std::getenv("WALKBACK_PACKED_GEMM");
  if (env && std::strcmp(env, "0") == 0) return PackedIsa::None;
  const bool avx2 = cpu_has(PackedIsa::Avx2);
  if (env && std::strcmp(env, "avx2") == 0) return avx2 ? PackedIsa::Avx2 : PackedIsa::None;
  return cpu_has(PackedIsa::Avx512) ? PackedIsa::Avx512 : avx2 ? PackedIsa::Avx2 : PackedIsa::None;
}
// The processor's best, chosen once when the library loads; g_isa is what new packs use.
const PackedIsa g_best = detect();
std::atomic<PackedIsa> g_isa{g_best};
std::atomic<int64_t> g_packs{0}, g_products{0};
}  // namespace

PackedIsa packed_gemm_isa() { return g_isa.load(std::memory_order_relaxed); }

bool packed_gemm_supported() { return packed_gemm_isa() != PackedIsa::None; }

namespace {
// Both rules: from min_rows rows and 2 steps; the AVX2 kernel only up to 256 rows.
bool packed_pays_from(int64_t min_rows, int64_t rows, int64_t steps) {
  const PackedIsa isa = packed_gemm_isa();
  if (isa == PackedIsa::None || rows < min_rows || steps < 2) return false;
  return isa == PackedIsa::Avx512 || rows <= 256;
}
}  // namespace

bool packed_gemm_pays(int64_t rows, int64_t steps) { return packed_pays_from(8, rows, steps); }

bool packed_chain_pays(int64_t rows, int64_t steps) { return packed_pays_from(2, rows, steps); }

namespace {
std::atomic<int> g_tall{-1};
}  // namespace

bool prefer_packed_gemm() {
  if (!packed_gemm_supported()) return false;
  const int mode = g_tall.load(std::memory_order_relaxed);
  if (mode >= 0) return mode == 1;
  return packed_gemm_isa() == PackedIsa::Avx512 && !blas::avx512_kernels();
}

void set_prefer_packed_gemm(int mode) {
  g_tall.store(mode < 0 ? -1 : mode > 0 ? 1 : 0, std::memory_order_relaxed);
}

bool set_packed_gemm_isa(PackedIsa isa) {
  if (!cpu_has(isa)) return false;
  g_isa.store(isa, std::memory_order_relaxed);
  return true;
}

bool set_packed_gemm(bool on) {
  g_isa.store(on ? g_best : PackedIsa::None, std::memory_order_relaxed);
  return packed_gemm_supported();
}

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

#ifdef WB_HAVE_X86_GEMM
// dst[i][j] = src[j][i] for a 16 x 16 block (row strides lds, ldd): pairs of rows interleaved,
// then pairs of pairs, then 128-bit lanes twice.
WB_AVX512 void transpose16(const float* src, int64_t lds, float* dst, int64_t ldd) {
  __m512 r[16], t[16];
  for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * lds);
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i + 0] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0x44);
    r[4 * i + 1] = _mm512_shuffle_ps(t[4 * i + 0], t[4 * i + 2], 0xEE);
    r[4 * i + 2] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
    r[4 * i + 3] = _mm512_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    t[i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0x88);
    t[4 + i] = _mm512_shuffle_f32x4(r[i], r[4 + i], 0xDD);
    t[8 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0x88);
    t[12 + i] = _mm512_shuffle_f32x4(r[8 + i], r[12 + i], 0xDD);
  }
  for (int i = 0; i < 8; ++i) {
    r[i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0x88);
    r[8 + i] = _mm512_shuffle_f32x4(t[i], t[8 + i], 0xDD);
  }
  for (int i = 0; i < 16; ++i) _mm512_storeu_ps(dst + i * ldd, r[i]);
}
const bool g_avx512_transpose = cpu_has(PackedIsa::Avx512);
#endif

// w rows of B (n x k) as the columns of one panel. A whole panel with AVX-512: 16 x 16 blocks
// transposed in registers. Otherwise (and for the last k % 16) in blocks of 16 of k so that both
// the rows read and the panel rows written stay in L1. Measured for W of 784 x 1000 on two
// threads: 0.145 ms with the AVX-512 blocks, 0.37 ms by the blocked loop alone (the plain copy
// of the other orientation: 0.13-0.19 ms; OpenBLAS's omatcopy, panel by panel, 0.8 ms).
void pack_transposed_panel(const float* b, int64_t ldb, int64_t w, int64_t k, float* p) {
  constexpr int64_t P = PackedWeights::kPanel, kBlock = 16;
  int64_t k0 = 0;
#ifdef WB_HAVE_X86_GEMM
  if (w == P && g_avx512_transpose)
    for (; k0 + 16 <= k; k0 += 16) {
      transpose16(b + k0, ldb, p + k0 * P, P);
      transpose16(b + 16 * ldb + k0, ldb, p + k0 * P + 16, P);
    }
#endif
  for (; k0 < k; k0 += kBlock) {
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

int64_t packed_weights_count() { return g_packs.load(std::memory_order_relaxed); }
int64_t packed_products_count() { return g_products.load(std::memory_order_relaxed); }

void PackedWeights::pack(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n) {
  g_packs.fetch_add(1, std::memory_order_relaxed);
  const int64_t panels = (n + kPanel - 1) / kPanel;
  const int64_t need = panels * k * kPanel;
  if (need > capacity_) {
    // Emptied first, so that a failed allocation leaves nothing that looks packed.
    data_.reset();
    capacity_ = k_ = n_ = 0;
    void* p = std::aligned_alloc(64, ((need * sizeof(float) + 63) / 64) * 64);
    if (!p) throw std::bad_alloc();
    data_.reset(static_cast<float*>(p));
    capacity_ = need;
  }
  // The kernel is fixed here for the life of this pack: switching the process's choice while
  // a chain runs must not leave its later steps without one.
  isa_ = g_isa.load(std::memory_order_relaxed);
  if (isa_ == PackedIsa::None) isa_ = g_best;
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

#ifdef WB_HAVE_X86_GEMM
namespace {

// An MR x 32 tile of C over kc rows of a panel (its first w columns): 2 MR accumulators, one
// broadcast of A per row and unit of k, two loads of the panel per unit of k. MR = 12 uses 24
// of the 32 registers. Every element of C is one chain of FMAs in k order, as in tile_avx2:
// both give the same bits. AT: A is given transposed (element (i, kk) at a[kk * lda + i]).
template <int MR, bool AT>
WB_AVX512 void tile_avx512(int64_t kc, const float* a, int64_t lda, const float* bp, float* c,
                           int64_t ldc, int w, bool accumulate) {
  const __mmask16 m0 = w >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << w) - 1);
  const __mmask16 m1 = w >= 32 ? 0xFFFF : w > 16 ? static_cast<__mmask16>((1u << (w - 16)) - 1) : 0;
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
      const __m512 ai = _mm512_set1_ps(AT ? a[kk * lda + i] : a[i * lda + kk]);
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

// Lanes [0, n) of 8 on.
WB_AVX2 inline __m256i lanes_below(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The AVX2 form (16 registers): the panel in two halves of 16 columns, each an MR x 16 tile
// with 2 MR accumulators; MR = 6 uses 12, plus two of the panel and one broadcast.
template <int MR, bool AT>
WB_AVX2 void tile_avx2(int64_t kc, const float* a, int64_t lda, const float* bp, float* c,
                       int64_t ldc, int w, bool accumulate) {
  for (int half = 0; half < 2 && 16 * half < w; ++half) {
    const float* bh = bp + 16 * half;
    float* ch = c + 16 * half;
    const int wh = std::min(16, w - 16 * half);
    __m256 c0[MR], c1[MR];
    for (int i = 0; i < MR; ++i) {
      c0[i] = _mm256_setzero_ps();
      c1[i] = _mm256_setzero_ps();
    }
#pragma GCC unroll 4
    for (int64_t kk = 0; kk < kc; ++kk) {
      const __m256 b0 = _mm256_load_ps(bh + kk * 32), b1 = _mm256_load_ps(bh + kk * 32 + 8);
#pragma GCC unroll 6
      for (int i = 0; i < MR; ++i) {
        const __m256 ai = _mm256_broadcast_ss(AT ? a + kk * lda + i : a + i * lda + kk);
        c0[i] = _mm256_fmadd_ps(ai, b0, c0[i]);
        c1[i] = _mm256_fmadd_ps(ai, b1, c1[i]);
      }
    }
    if (wh == 16) {
      for (int i = 0; i < MR; ++i) {
        float* ci = ch + i * ldc;
        if (accumulate) {
          c0[i] = _mm256_add_ps(c0[i], _mm256_loadu_ps(ci));
          c1[i] = _mm256_add_ps(c1[i], _mm256_loadu_ps(ci + 8));
        }
        _mm256_storeu_ps(ci, c0[i]);
        _mm256_storeu_ps(ci + 8, c1[i]);
      }
    } else {
      const __m256i k0 = lanes_below(wh), k1 = lanes_below(wh - 8);
      for (int i = 0; i < MR; ++i) {
        float* ci = ch + i * ldc;
        if (accumulate) {
          c0[i] = _mm256_add_ps(c0[i], _mm256_maskload_ps(ci, k0));
          c1[i] = _mm256_add_ps(c1[i], _mm256_maskload_ps(ci + 8, k1));
        }
        _mm256_maskstore_ps(ci, k0, c0[i]);
        _mm256_maskstore_ps(ci + 8, k1, c1[i]);
      }
    }
  }
}

using TileFn = void (*)(int64_t, const float*, int64_t, const float*, float*, int64_t, int, bool);
template <bool AT, int... I>
constexpr std::array<TileFn, sizeof...(I)> avx512_tiles(std::integer_sequence<int, I...>) {
  return {&tile_avx512<I + 1, AT>...};
}
template <bool AT, int... I>
constexpr std::array<TileFn, sizeof...(I)> avx2_tiles(std::integer_sequence<int, I...>) {
  return {&tile_avx2<I + 1, AT>...};
}
constexpr int kMrAvx512 = 12, kMrAvx2 = 6;
constexpr auto kTilesAvx512 = avx512_tiles<false>(std::make_integer_sequence<int, kMrAvx512>{});
constexpr auto kTilesAvx2 = avx2_tiles<false>(std::make_integer_sequence<int, kMrAvx2>{});
constexpr auto kTilesAvx512T = avx512_tiles<true>(std::make_integer_sequence<int, kMrAvx512>{});
constexpr auto kTilesAvx2T = avx2_tiles<true>(std::make_integer_sequence<int, kMrAvx2>{});

// Rows in blocks of kMc: a block of A (kMc x k) stays in L2 while every panel of the slice
// passes over it. K in blocks of kKc only past kKcMax, so C is written once for the usual k.
// The same blocks for both instruction sets, so that both sum in the same order.
constexpr int64_t kMc = 192, kKcMax = 1024, kKc = 512;
// With a callback (BlockDone), the panels that one pass of row groups reads: half of the
// core's L2 (512 KB where the system does not say). Measured (benchmarks/RESULTS.md): 1 MB on
// a 1 MB L2 slowed a chain step whose thread took all of W's panels by 2-3%.
int64_t group_bytes() {
  static const int64_t bytes = [] {
#ifdef _SC_LEVEL2_CACHE_SIZE  // glibc
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
#else
    const long l2 = 0;
#endif
    return l2 > 0 ? std::clamp<int64_t>(l2 / 2, int64_t(128) << 10, int64_t(4) << 20)
                  : int64_t(512) << 10;
  }();
  return bytes;
}

// C[:, j0:j1] (+)= A op(B)[kb:ke, j0:j1] (A: m x (ke - kb), lda; or, when a_trans, given as
// its transpose, (ke - kb) x m), in the blocks above: K in blocks of kKc past kKcMax, each
// element one chain of FMAs in k's order.
void multiply(int64_t m, const float* a, int64_t lda, const PackedWeights& b, int64_t kb,
              int64_t ke, float* c, int64_t ldc, int64_t j0, int64_t j1, bool accumulate,
              bool a_trans = false) {
  constexpr int64_t P = PackedWeights::kPanel;
  const bool avx512 = b.isa() == PackedIsa::Avx512;
  const TileFn* tiles = a_trans ? (avx512 ? kTilesAvx512T.data() : kTilesAvx2T.data())
                                : (avx512 ? kTilesAvx512.data() : kTilesAvx2.data());
  const int64_t mr_max = avx512 ? kMrAvx512 : kMrAvx2;
  const int64_t k = ke - kb;
  const int64_t kc_step = k <= kKcMax ? std::max<int64_t>(k, 1) : kKc;
  for (int64_t k0 = kb; k0 < ke; k0 += kc_step) {
    const int64_t kc = std::min(kc_step, ke - k0);
    const bool acc = accumulate || k0 > kb;
    for (int64_t i0 = 0; i0 < m; i0 += kMc) {
      const int64_t i1 = std::min(m, i0 + kMc);
      for (int64_t c0 = j0; c0 < j1; c0 += P) {
        const int w = static_cast<int>(std::min(P, j1 - c0));
        const float* bq = b.panel(c0 / P) + k0 * P;
        for (int64_t i = i0; i < i1; i += mr_max) {
          const int64_t mr = std::min<int64_t>(mr_max, i1 - i);
          const float* ai = a_trans ? a + (k0 - kb) * lda + i : a + i * lda + (k0 - kb);
          tiles[mr - 1](kc, ai, lda, bq, c + i * ldc + c0, ldc, w, acc);
        }
      }
    }
  }
}

}  // namespace
#endif


namespace {

// The checks and the count that every product by a pack starts with.
void begin_product(const char* who, const PackedWeights& b, int64_t j0, int64_t j1) {
  if (j0 % PackedWeights::kPanel != 0 || j1 > b.n() || j0 > j1)
    throw std::invalid_argument(std::string(who) + ": columns must start on a panel, within n");
  if (b.isa() == PackedIsa::None)
    throw std::logic_error(std::string(who) + ": this processor has neither AVX-512 nor AVX2");
  g_products.fetch_add(1, std::memory_order_relaxed);
}

// C[:, j0:j1] of a product over no k: zero, or unchanged when accumulating.
void empty_product(int64_t m, float* c, int64_t ldc, int64_t j0, int64_t j1, bool accumulate) {
  if (!accumulate)
    for (int64_t r = 0; r < m; ++r) std::fill(c + r * ldc + j0, c + r * ldc + j1, 0.0f);
}

}  // namespace

void packed_gemm(int64_t m, const float* a, int64_t lda, const PackedWeights& b, float* c,
                 int64_t ldc, int64_t j0, int64_t j1, bool accumulate, const BlockDone* done) {
  constexpr int64_t P = PackedWeights::kPanel;
  begin_product("packed_gemm", b, j0, j1);
  const PackedIsa isa = b.isa();
#ifdef WB_HAVE_X86_GEMM
  const TileFn* tiles = isa == PackedIsa::Avx512 ? kTilesAvx512.data() : kTilesAvx2.data();
  const int64_t mr_max = isa == PackedIsa::Avx512 ? kMrAvx512 : kMrAvx2;
  const int64_t k = b.k();
  const int64_t kc_step = k <= kKcMax ? std::max<int64_t>(k, 1) : kKc;
  if (k == 0) {
    empty_product(m, c, ldc, j0, j1, accumulate);
    if (done && m > 0) (*done)(0, m, j0, j1);
    return;
  }
  if (done && kc_step == k) {
    // One block of k: the slice in groups of panels that stay in L2 (group_bytes()); in each,
    // every group of rows goes through the panels, then its callback runs while that block of
    // C (a few KB) is still in L1. Each element is the same chain of FMAs as below. Measured
    // (benchmarks/RESULTS.md): the chain's bias + sigmoid and sampling passes had read C back
    // from L2 or memory.
    const int64_t panel_bytes = k * P * static_cast<int64_t>(sizeof(float));
    const int64_t group = P * std::max<int64_t>(1, group_bytes() / panel_bytes);
    for (int64_t g0 = j0; g0 < j1; g0 += group) {
      const int64_t g1 = std::min(j1, g0 + group);
      for (int64_t i = 0; i < m; i += mr_max) {
        const int64_t mr = std::min<int64_t>(mr_max, m - i);
        for (int64_t c0 = g0; c0 < g1; c0 += P) {
          const int w = static_cast<int>(std::min(P, g1 - c0));
          tiles[mr - 1](k, a + i * lda, lda, b.panel(c0 / P), c + i * ldc + c0, ldc, w,
                        accumulate);
        }
        (*done)(i, i + mr, g0, g1);
      }
    }
    return;
  }
  multiply(m, a, lda, b, 0, k, c, ldc, j0, j1, accumulate);
  if (done && m > 0) (*done)(0, m, j0, j1);
#else
  (void)m, (void)a, (void)lda, (void)c, (void)ldc, (void)accumulate, (void)done;
#endif
}

void packed_gemm_at(int64_t m, const float* at, int64_t ldat, const PackedWeights& b, float* c,
                    int64_t ldc, int64_t j0, int64_t j1, bool accumulate) {
  begin_product("packed_gemm_at", b, j0, j1);
  if (b.k() == 0) return empty_product(m, c, ldc, j0, j1, accumulate);
#ifdef WB_HAVE_X86_GEMM
  multiply(m, at, ldat, b, 0, b.k(), c, ldc, j0, j1, accumulate, true);
#else
  (void)at, (void)ldat;
#endif
}

void packed_gemm_k(int64_t m, const float* a, int64_t lda, const PackedWeights& b, int64_t k0,
                   int64_t k1, float* c, int64_t ldc, int64_t j0, int64_t j1, bool accumulate) {
  if (k0 < 0 || k1 > b.k() || k0 > k1)
    throw std::invalid_argument("packed_gemm_k: expected 0 <= k0 <= k1 <= k");
  begin_product("packed_gemm_k", b, j0, j1);
  if (k1 == k0) return empty_product(m, c, ldc, j0, j1, accumulate);
#ifdef WB_HAVE_X86_GEMM
  multiply(m, a, lda, b, k0, k1, c, ldc, j0, j1, accumulate);
#else
  (void)a, (void)lda;
#endif
}

}  // namespace wb
