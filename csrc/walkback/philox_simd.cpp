#include "walkback/philox_simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
// GCC 12 warns "__Y may be used uninitialized" inside avx512fintrin.h's own helpers, once per
// instantiation of the interleaved passes below: known false positives that would bury real
// warnings in the build log.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define WB_HAVE_AVX2_PATH 1
#endif

namespace wb {
namespace {

// The Philox blocks a call draws (one step and stream): `rows` rows of `count` blocks, block i
// of row r being (group g0 + i, chain c0 + r) or, over chains, (group g0, chain c0 + r + i),
// stored from out + r ld + 4 i. uniform_blocks draws a row's blocks, chain_blocks one block of
// many chains, uniform_block_rows the blocks of several rows. A SIMD path cuts them into sets
// of `width` blocks (its lanes): set k is piece k % per_row() of row k / per_row(), so that
// one pass interleaves the sets of several rows when a row is too short to fill a pass alone.
struct Sets {
  uint32_t g0, c0;
  int64_t count, rows, ld;
  float* out;
  bool over_chains;
  int64_t width = 1;
  int64_t per_row() const { return (count + width - 1) / width; }
};

// Walks the sets of a Sets in order, row by row (no division per set).
class SetCursor {
 public:
  explicit SetCursor(const Sets& s) : s_(s), per_row_(s.per_row()) {}
  int64_t total() const { return s_.rows * per_row_; }
  // The next set: its first block's group and chain, where it is stored, how many blocks.
  void next(uint32_t* g, uint32_t* c, float** o, int* n) {
    const int64_t i = s_.width * piece_, left = s_.count - i;
    *g = s_.g0 + (s_.over_chains ? 0u : static_cast<uint32_t>(i));
    *c = s_.c0 + static_cast<uint32_t>(r_) + (s_.over_chains ? static_cast<uint32_t>(i) : 0u);
    *o = s_.out + r_ * s_.ld + 4 * i;
    *n = static_cast<int>(left < s_.width ? left : s_.width);
    if (++piece_ == per_row_) piece_ = 0, ++r_;
  }

 private:
  const Sets& s_;
  int64_t per_row_, r_ = 0, piece_ = 0;
};

void sets_scalar(StreamKey key, const Sets& s, uint32_t step, uint32_t stream) {
  for (int64_t r = 0; r < s.rows; ++r)
    for (int64_t i = 0; i < s.count; ++i) {
      const uint32_t u = static_cast<uint32_t>(i), row = static_cast<uint32_t>(r);
      const Philox4 b = stream_block(key, s.g0 + (s.over_chains ? 0u : u),
                                     s.c0 + row + (s.over_chains ? u : 0u), step, stream);
      for (int l = 0; l < 4; ++l) s.out[r * s.ld + 4 * i + l] = u01(b.v[l]);
    }
}

#ifdef WB_HAVE_AVX2_PATH
// (hi, lo) of the 32 x 32 -> 64-bit products of a's eight lanes with the constant m.
__attribute__((target("avx2"))) inline void mulhilo8(__m256i a, __m256i m, __m256i* hi,
                                                      __m256i* lo) {
  const __m256i even = _mm256_mul_epu32(a, m);
  const __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), m);
  *lo = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xAA);
  *hi = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xAA);
}

__attribute__((target("avx2"))) inline __m256 u01_8(__m256i bits) {
  const __m256 k = _mm256_cvtepi32_ps(_mm256_srli_epi32(bits, 9));  // < 2^23: exact, signed ok
  return _mm256_mul_ps(_mm256_add_ps(k, _mm256_set1_ps(0.5f)), _mm256_set1_ps(1.0f / 8388608.0f));
}

// Philox4x32-10 on N interleaved sets of eight counters (c0[n], c1[n] per lane; step and
// stream shared), the uniforms in v[n][word]: as philox16 below, one set alone waits on the
// latency of its rounds.
template <int N>
__attribute__((target("avx2"))) inline void philox8(StreamKey key, const __m256i* c0_in,
                                                     const __m256i* c1_in, uint32_t step,
                                                     uint32_t stream, __m256 (*v)[4]) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m256i c0[N], c1[N], c2[N], c3[N];
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) {
    c0[n] = c0_in[n];
    c1[n] = c1_in[n];
    c2[n] = _mm256_set1_epi32(static_cast<int>(step));
    c3[n] = _mm256_set1_epi32(static_cast<int>(stream));
  }
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < 10; ++r) {
    const __m256i key0 = _mm256_set1_epi32(static_cast<int>(k0));
    const __m256i key1 = _mm256_set1_epi32(static_cast<int>(k1));
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n) {
      __m256i hi0, lo0, hi1, lo1;
      mulhilo8(c0[n], m0, &hi0, &lo0);
      mulhilo8(c2[n], m1, &hi1, &lo1);
      c0[n] = _mm256_xor_si256(_mm256_xor_si256(hi1, c1[n]), key0);
      c1[n] = lo1;
      c2[n] = _mm256_xor_si256(_mm256_xor_si256(hi0, c3[n]), key1);
      c3[n] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) {
    v[n][0] = u01_8(c0[n]);
    v[n][1] = u01_8(c1[n]);
    v[n][2] = u01_8(c2[n]);
    v[n][3] = u01_8(c3[n]);
  }
}

// out[4 b + l] = v[l][b] for the first n blocks b (n <= 8): the 4 x 8 transpose in registers
// (unpacks within 128-bit lanes leave block 4k + j in lane k of u_j; then whole lanes are
// paired).
__attribute__((target("avx2"))) inline void store_blocks8(const __m256 v[4], float* out, int n) {
  const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(v[0], v[1]));
  const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(v[0], v[1]));
  const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(v[2], v[3]));
  const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(v[2], v[3]));
  const __m256 u0 = _mm256_castpd_ps(_mm256_unpacklo_pd(t0, t2));
  const __m256 u1 = _mm256_castpd_ps(_mm256_unpackhi_pd(t0, t2));
  const __m256 u2 = _mm256_castpd_ps(_mm256_unpacklo_pd(t1, t3));
  const __m256 u3 = _mm256_castpd_ps(_mm256_unpackhi_pd(t1, t3));
  const __m256 o[4] = {_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u2, u3, 0x20),
                       _mm256_permute2f128_ps(u0, u1, 0x31), _mm256_permute2f128_ps(u2, u3, 0x31)};
  if (n == 8) {
    for (int k = 0; k < 4; ++k) _mm256_storeu_ps(out + 8 * k, o[k]);
    return;
  }
  alignas(32) float tmp[32];
  for (int k = 0; k < 4; ++k) _mm256_store_ps(tmp + 8 * k, o[k]);
  for (int i = 0; i < 4 * n; ++i) out[i] = tmp[i];
}

// The next N sets (width 8), interleaved (philox8); dg, dc: the lanes' offsets to the
// group and the chain.
template <int N>
__attribute__((target("avx2"))) inline void pass8(StreamKey key, SetCursor& sets,
                                                  __m256i dg, __m256i dc, uint32_t step,
                                                  uint32_t stream) {
  __m256i c0[N], c1[N];
  __m256 v[N][4];
  float* o[N];
  int cnt[N];
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) {
    uint32_t g, c;
    sets.next(&g, &c, &o[n], &cnt[n]);
    c0[n] = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(g)), dg);
    c1[n] = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(c)), dc);
  }
  philox8<N>(key, c0, c1, step, stream, v);
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) store_blocks8(v[n], o[n], cnt[n]);
}

// Passes of four interleaved sets (1.94 ns a block against 3.42 for one set and 2.56 for two,
// on the Zen of philox16's note, where some of the four sets' registers spill), then two,
// then one.
__attribute__((target("avx2"))) void sets_avx2(StreamKey key, const Sets& s, uint32_t step,
                                               uint32_t stream) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), zero = _mm256_setzero_si256();
  const __m256i dg = s.over_chains ? zero : lane, dc = s.over_chains ? lane : zero;
  SetCursor sets(s);
  const int64_t total = sets.total();
  int64_t k = 0;
  for (; k + 4 <= total; k += 4) pass8<4>(key, sets, dg, dc, step, stream);
  for (; k + 2 <= total; k += 2) pass8<2>(key, sets, dg, dc, step, stream);
  for (; k < total; ++k) pass8<1>(key, sets, dg, dc, step, stream);
}

__attribute__((target("avx512f"))) inline void mulhilo16(__m512i a, __m512i m, __m512i* hi,
                                                         __m512i* lo) {
  const __m512i even = _mm512_mul_epu32(a, m);
  const __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), m);
  *lo = _mm512_mask_blend_epi32(0xAAAA, even, _mm512_slli_epi64(odd, 32));
  *hi = _mm512_mask_blend_epi32(0xAAAA, _mm512_srli_epi64(even, 32), odd);
}

__attribute__((target("avx512f"))) inline __m512 u01_16(__m512i bits) {
  const __m512 k = _mm512_cvtepi32_ps(_mm512_srli_epi32(bits, 9));
  return _mm512_mul_ps(_mm512_add_ps(k, _mm512_set1_ps(0.5f)),
                       _mm512_set1_ps(1.0f / 8388608.0f));
}

// The uniforms of N x 16 blocks, one per lane of N independent sets (counter words c0[n],
// c1[n] per lane; step and stream shared), in v[n][word]. The sets' rounds interleave: one
// set's round is a chain of dependent multiplies and xors, so a lone set waits on latency
// (measured 1.6 ns a block alone, on a Zen with full-width AVX-512).
template <int N>
__attribute__((target("avx512f"))) inline void philox16(StreamKey key, const __m512i* c0_in,
                                                         const __m512i* c1_in, uint32_t step,
                                                         uint32_t stream, __m512 (*v)[4]) {
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m512i c0[N], c1[N], c2[N], c3[N];
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) {
    c0[n] = c0_in[n];
    c1[n] = c1_in[n];
    c2[n] = _mm512_set1_epi32(static_cast<int>(step));
    c3[n] = _mm512_set1_epi32(static_cast<int>(stream));
  }
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < 10; ++r) {
    const __m512i key0 = _mm512_set1_epi32(static_cast<int>(k0));
    const __m512i key1 = _mm512_set1_epi32(static_cast<int>(k1));
#pragma GCC unroll 4
    for (int n = 0; n < N; ++n) {
      __m512i hi0, lo0, hi1, lo1;
      mulhilo16(c0[n], m0, &hi0, &lo0);
      mulhilo16(c2[n], m1, &hi1, &lo1);
      c0[n] = _mm512_xor_si512(_mm512_xor_si512(hi1, c1[n]), key0);
      c1[n] = lo1;
      c2[n] = _mm512_xor_si512(_mm512_xor_si512(hi0, c3[n]), key1);
      c3[n] = lo0;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) {
    v[n][0] = u01_16(c0[n]);
    v[n][1] = u01_16(c1[n]);
    v[n][2] = u01_16(c2[n]);
    v[n][3] = u01_16(c3[n]);
  }
}

// 0 .. 15; a function, not a global: a global would run AVX-512 when the library loads.
__attribute__((target("avx512f"))) inline __m512i lanes16() {
  return _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

// out[4 b + l] = v[l][b] for the first n blocks b (n <= 16): the 4 x 16 transpose in registers
// (unpacks within 128-bit lanes, then 128-bit shuffles), stored whole or masked.
__attribute__((target("avx512f"))) inline void store_blocks16(const __m512 v[4], float* out,
                                                               int n) {
  const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
  const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
  // u_j's 128-bit lane k holds block 4k + j's four words (pairs of words moved as doubles).
  const __m512d p0 = _mm512_castps_pd(t0), p1 = _mm512_castps_pd(t1);
  const __m512d p2 = _mm512_castps_pd(t2), p3 = _mm512_castps_pd(t3);
  const __m512 u0 = _mm512_castpd_ps(_mm512_unpacklo_pd(p0, p2));
  const __m512 u1 = _mm512_castpd_ps(_mm512_unpackhi_pd(p0, p2));
  const __m512 u2 = _mm512_castpd_ps(_mm512_unpacklo_pd(p1, p3));
  const __m512 u3 = _mm512_castpd_ps(_mm512_unpackhi_pd(p1, p3));
  const __m512 a = _mm512_shuffle_f32x4(u0, u1, 0x44), b = _mm512_shuffle_f32x4(u2, u3, 0x44);
  const __m512 c = _mm512_shuffle_f32x4(u0, u1, 0xEE), d = _mm512_shuffle_f32x4(u2, u3, 0xEE);
  const __m512 o[4] = {_mm512_shuffle_f32x4(a, b, 0x88), _mm512_shuffle_f32x4(a, b, 0xDD),
                       _mm512_shuffle_f32x4(c, d, 0x88), _mm512_shuffle_f32x4(c, d, 0xDD)};
  if (n == 16) {
    for (int k = 0; k < 4; ++k) _mm512_storeu_ps(out + 16 * k, o[k]);
    return;
  }
  for (int k = 0; k < 4; ++k) {
    const int count = 4 * n - 16 * k;
    if (count <= 0) break;
    const __mmask16 m = count >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << count) - 1u);
    _mm512_mask_storeu_ps(out + 16 * k, m, o[k]);
  }
}

// The next N sets (width 16), interleaved (philox16); dg, dc as for pass8.
template <int N>
__attribute__((target("avx512f"))) inline void pass16(StreamKey key, SetCursor& sets,
                                                       __m512i dg, __m512i dc, uint32_t step,
                                                       uint32_t stream) {
  __m512i c0[N], c1[N];
  __m512 v[N][4];
  float* o[N];
  int cnt[N];
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) {
    uint32_t g, c;
    sets.next(&g, &c, &o[n], &cnt[n]);
    c0[n] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(g)), dg);
    c1[n] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(c)), dc);
  }
  philox16<N>(key, c0, c1, step, stream, v);
#pragma GCC unroll 4
  for (int n = 0; n < N; ++n) store_blocks16(v[n], o[n], cnt[n]);
}

// Passes of four interleaved sets (0.89 ns a block against 1.62 for one set and 1.19 for
// two, measured on that Zen; eight sets spill registers), then two, then one.
__attribute__((target("avx512f"))) void sets_avx512(StreamKey key, const Sets& s, uint32_t step,
                                                    uint32_t stream) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i dg = s.over_chains ? zero : lanes16(), dc = s.over_chains ? lanes16() : zero;
  SetCursor sets(s);
  const int64_t total = sets.total();
  int64_t k = 0;
  for (; k + 4 <= total; k += 4) pass16<4>(key, sets, dg, dc, step, stream);
  for (; k + 2 <= total; k += 2) pass16<2>(key, sets, dg, dc, step, stream);
  for (; k < total; ++k) pass16<1>(key, sets, dg, dc, step, stream);
}

const bool g_avx2 = __builtin_cpu_supports("avx2");
const bool g_avx512 = __builtin_cpu_supports("avx512f");
#endif

}  // namespace

namespace {

// The sets through path 0 (scalar), 1 (AVX2), 2 (AVX-512), or -1 (the best this machine has);
// false where the machine (or build) lacks the path asked for.
bool draw(int path, StreamKey key, Sets s, uint32_t step, uint32_t stream) {
#ifdef WB_HAVE_AVX2_PATH
  if (path == -1) path = g_avx512 ? 2 : g_avx2 ? 1 : 0;
  if ((path == 2 && !g_avx512) || (path == 1 && !g_avx2)) return false;
  if (path == 2) {
    s.width = 16;
    sets_avx512(key, s, step, stream);
    return true;
  }
  if (path == 1) {
    s.width = 8;
    sets_avx2(key, s, step, stream);
    return true;
  }
#else
  if (path == -1) path = 0;
#endif
  if (path != 0) return false;
  sets_scalar(key, s, step, stream);
  return true;
}

}  // namespace

void uniform_blocks(StreamKey key, uint32_t g0, int64_t groups, uint32_t chain, uint32_t step,
                    uint32_t stream, float* out) {
  draw(-1, key, {g0, chain, groups, 1, 4 * groups, out, false}, step, stream);
}

void chain_blocks(StreamKey key, uint32_t group, uint32_t chain0, int64_t chains, uint32_t step,
                  uint32_t stream, float* out) {
  draw(-1, key, {group, chain0, chains, 1, 4 * chains, out, true}, step, stream);
}

bool philox_blocks_path(int path, StreamKey key, uint32_t g0, uint32_t chain0, int64_t count,
                        bool over_chains, uint32_t step, uint32_t stream, float* out) {
  return path >= 0 &&
         draw(path, key, {g0, chain0, count, 1, 4 * count, out, over_chains}, step, stream);
}

void uniform_block_rows(StreamKey key, uint32_t g0, int64_t groups, uint32_t chain0,
                        int64_t rows, int64_t ld, uint32_t step, uint32_t stream, float* out) {
  draw(-1, key, {g0, chain0, groups, rows, ld, out, false}, step, stream);
}

bool uniform_block_rows_path(int path, StreamKey key, uint32_t g0, int64_t groups,
                             uint32_t chain0, int64_t rows, int64_t ld, uint32_t step,
                             uint32_t stream, float* out) {
  return path >= 0 &&
         draw(path, key, {g0, chain0, groups, rows, ld, out, false}, step, stream);
}

bool uniform_blocks_simd() {
#ifdef WB_HAVE_AVX2_PATH
  return g_avx2;
#else
  return false;
#endif
}

}  // namespace wb
