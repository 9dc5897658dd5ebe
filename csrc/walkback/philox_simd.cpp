#include "walkback/philox_simd.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define WB_HAVE_AVX2_PATH 1
#endif

namespace wb {
namespace {

void uniform_blocks_scalar(StreamKey key, uint32_t g0, int64_t groups, uint32_t chain,
                           uint32_t step, uint32_t stream, float* out) {
  for (int64_t i = 0; i < groups; ++i) {
    const Philox4 b = stream_block(key, g0 + static_cast<uint32_t>(i), chain, step, stream);
    for (int l = 0; l < 4; ++l) out[4 * i + l] = u01(b.v[l]);
  }
}

void chain_blocks_scalar(StreamKey key, uint32_t group, uint32_t chain0, int64_t chains,
                         uint32_t step, uint32_t stream, float* out) {
  for (int64_t c = 0; c < chains; ++c) {
    const Philox4 b = stream_block(key, group, chain0 + static_cast<uint32_t>(c), step, stream);
    for (int l = 0; l < 4; ++l) out[4 * c + l] = u01(b.v[l]);
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

// Philox4x32-10 on eight counters (c0, c1 per lane; step and stream shared), stored as
// out[4 b + l] = u01(word l of lane b)'s block, for the first n lanes (n <= 8).
__attribute__((target("avx2"))) inline void philox8_store(StreamKey key, __m256i c0, __m256i c1,
                                                          uint32_t step, uint32_t stream,
                                                          float* out, int n) {
  const __m256i m0 = _mm256_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m256i m1 = _mm256_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m256i c2 = _mm256_set1_epi32(static_cast<int>(step));
  __m256i c3 = _mm256_set1_epi32(static_cast<int>(stream));
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < 10; ++r) {
    __m256i hi0, lo0, hi1, lo1;
    mulhilo8(c0, m0, &hi0, &lo0);
    mulhilo8(c2, m1, &hi1, &lo1);
    c0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32(static_cast<int>(k0)));
    c1 = lo1;
    c2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32(static_cast<int>(k1)));
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  // out[4 b + l] = word l of block b: the 4 x 8 transpose in registers (unpacks within
  // 128-bit lanes leave block 4k + j in lane k of u_j; then whole lanes are paired).
  const __m256 v0 = u01_8(c0), v1 = u01_8(c1), v2 = u01_8(c2), v3 = u01_8(c3);
  const __m256d t0 = _mm256_castps_pd(_mm256_unpacklo_ps(v0, v1));
  const __m256d t1 = _mm256_castps_pd(_mm256_unpackhi_ps(v0, v1));
  const __m256d t2 = _mm256_castps_pd(_mm256_unpacklo_ps(v2, v3));
  const __m256d t3 = _mm256_castps_pd(_mm256_unpackhi_ps(v2, v3));
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

__attribute__((target("avx2"))) void uniform_blocks_avx2(StreamKey key, uint32_t g0,
                                                         int64_t groups, uint32_t chain,
                                                         uint32_t step, uint32_t stream,
                                                         float* out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  int64_t i = 0;
  for (; i + 8 <= groups; i += 8)
    philox8_store(key, _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(g0 + i)), lane),
                  _mm256_set1_epi32(static_cast<int>(chain)), step, stream, out + 4 * i, 8);
  uniform_blocks_scalar(key, g0 + static_cast<uint32_t>(i), groups - i, chain, step, stream,
                        out + 4 * i);
}

// One block of each of `chains` chains: lanes over chains instead of blocks.
__attribute__((target("avx2"))) void chain_blocks_avx2(StreamKey key, uint32_t group,
                                                       uint32_t chain0, int64_t chains,
                                                       uint32_t step, uint32_t stream,
                                                       float* out) {
  const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  for (int64_t c = 0; c < chains; c += 8) {
    const int64_t left = chains - c;
    philox8_store(key, _mm256_set1_epi32(static_cast<int>(group)),
                  _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(chain0 + c)), lane), step,
                  stream, out + 4 * c, left < 8 ? static_cast<int>(left) : 8);
  }
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

// The uniforms of 16 blocks, one per lane (counter words c0, c1 per lane; step and stream
// shared), in v[word].
__attribute__((target("avx512f"))) inline void philox16(StreamKey key, __m512i c0, __m512i c1,
                                                         uint32_t step, uint32_t stream,
                                                         __m512 v[4]) {
  const __m512i m0 = _mm512_set1_epi32(static_cast<int>(0xD2511F53u));
  const __m512i m1 = _mm512_set1_epi32(static_cast<int>(0xCD9E8D57u));
  __m512i c2 = _mm512_set1_epi32(static_cast<int>(step));
  __m512i c3 = _mm512_set1_epi32(static_cast<int>(stream));
  uint32_t k0 = key.k0, k1 = key.k1;
  for (int r = 0; r < 10; ++r) {
    __m512i hi0, lo0, hi1, lo1;
    mulhilo16(c0, m0, &hi0, &lo0);
    mulhilo16(c2, m1, &hi1, &lo1);
    c0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32(static_cast<int>(k0)));
    c1 = lo1;
    c2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32(static_cast<int>(k1)));
    c3 = lo0;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  v[0] = u01_16(c0);
  v[1] = u01_16(c1);
  v[2] = u01_16(c2);
  v[3] = u01_16(c3);
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

__attribute__((target("avx512f"))) void uniform_blocks_avx512(StreamKey key, uint32_t g0,
                                                              int64_t groups, uint32_t chain,
                                                              uint32_t step, uint32_t stream,
                                                              float* out) {
  __m512 v[4];
  for (int64_t i = 0; i < groups; i += 16) {
    // The last, partial batch runs all 16 lanes and stores only its blocks.
    philox16(key, _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(g0 + i)), lanes16()),
             _mm512_set1_epi32(static_cast<int>(chain)), step, stream, v);
    const int64_t left = groups - i;
    store_blocks16(v, out + 4 * i, left < 16 ? static_cast<int>(left) : 16);
  }
}

__attribute__((target("avx512f"))) void chain_blocks_avx512(StreamKey key, uint32_t group,
                                                            uint32_t chain0, int64_t chains,
                                                            uint32_t step, uint32_t stream,
                                                            float* out) {
  __m512 v[4];
  for (int64_t c = 0; c < chains; c += 16) {
    philox16(key, _mm512_set1_epi32(static_cast<int>(group)),
             _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(chain0 + c)), lanes16()), step,
             stream, v);
    const int64_t left = chains - c;
    store_blocks16(v, out + 4 * c, left < 16 ? static_cast<int>(left) : 16);
  }
}

const bool g_avx2 = __builtin_cpu_supports("avx2");
const bool g_avx512 = __builtin_cpu_supports("avx512f");
#endif

}  // namespace

void uniform_blocks(StreamKey key, uint32_t g0, int64_t groups, uint32_t chain, uint32_t step,
                    uint32_t stream, float* out) {
#ifdef WB_HAVE_AVX2_PATH
  if (g_avx512) return uniform_blocks_avx512(key, g0, groups, chain, step, stream, out);
  if (g_avx2) return uniform_blocks_avx2(key, g0, groups, chain, step, stream, out);
#endif
  uniform_blocks_scalar(key, g0, groups, chain, step, stream, out);
}

bool uniform_blocks_path(int path, StreamKey key, uint32_t g0, int64_t groups, uint32_t chain,
                         uint32_t step, uint32_t stream, float* out) {
  switch (path) {
    case 0:
      uniform_blocks_scalar(key, g0, groups, chain, step, stream, out);
      return true;
#ifdef WB_HAVE_AVX2_PATH
    case 1:
      if (!g_avx2) return false;
      uniform_blocks_avx2(key, g0, groups, chain, step, stream, out);
      return true;
    case 2:
      if (!g_avx512) return false;
      uniform_blocks_avx512(key, g0, groups, chain, step, stream, out);
      return true;
#endif
    default:
      return false;
  }
}

void chain_blocks(StreamKey key, uint32_t group, uint32_t chain0, int64_t chains, uint32_t step,
                  uint32_t stream, float* out) {
#ifdef WB_HAVE_AVX2_PATH
  if (g_avx512) return chain_blocks_avx512(key, group, chain0, chains, step, stream, out);
  if (g_avx2) return chain_blocks_avx2(key, group, chain0, chains, step, stream, out);
#endif
  chain_blocks_scalar(key, group, chain0, chains, step, stream, out);
}

bool chain_blocks_path(int path, StreamKey key, uint32_t group, uint32_t chain0, int64_t chains,
                       uint32_t step, uint32_t stream, float* out) {
  switch (path) {
    case 0:
      chain_blocks_scalar(key, group, chain0, chains, step, stream, out);
      return true;
#ifdef WB_HAVE_AVX2_PATH
    case 1:
      if (!g_avx2) return false;
      chain_blocks_avx2(key, group, chain0, chains, step, stream, out);
      return true;
    case 2:
      if (!g_avx512) return false;
      chain_blocks_avx512(key, group, chain0, chains, step, stream, out);
      return true;
#endif
    default:
      return false;
  }
}

bool uniform_blocks_simd() {
#ifdef WB_HAVE_AVX2_PATH
  return g_avx2;
#else
  return false;
#endif
}

}  // namespace wb
