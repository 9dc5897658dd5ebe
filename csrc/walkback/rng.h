// Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011), written
// once for host and device with plain 64-bit multiplies, pinned by Random123's known-answer
// vectors in tests/test_rng.py.
//
// The stream of walkback: key = the 64-bit seed; counter = (unit / 4, chain, step, stream).
// One Philox call yields the uniforms of 4 consecutive units (lane = unit % 4), so a number
// depends only on (seed, step, chain, unit, stream): never on the batch split, the thread count
// or the device.
#pragma once
#include <cmath>
#include <cstdint>

#include "walkback/common.h"
#include "walkback/fast_math.h"

namespace wb {

struct Philox4 {
  uint32_t v[4];
};

WB_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  // The high word from a 64-bit product and the low word from a 32-bit one: compilers turn
  // this into a widening 32 x 32 multiply (vpmuludq) rather than a 64 x 64 one (vpmullq).
  *hi = static_cast<uint32_t>((static_cast<uint64_t>(a) * static_cast<uint64_t>(b)) >> 32);
  return a * b;
}

WB_HD Philox4 philox4x32_10(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                            uint32_t k1) {
  constexpr uint32_t kM0 = 0xD2511F53u, kM1 = 0xCD9E8D57u;
  constexpr uint32_t kW0 = 0x9E3779B9u, kW1 = 0xBB67AE85u;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(kM0, c0, &hi0);
    const uint32_t lo1 = mulhilo32(kM1, c2, &hi1);
    const uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// A 32-bit word to a float in the open interval (0, 1): the top 23 bits, centred, so
// (k + 0.5) / 2^23 is exact in float32 and lies in [2^-24, 1 - 2^-24] (Random123's u01 with
// 32 bits, and even 24 bits centred, can round to 1.0f).
WB_HD float u01(uint32_t bits) {
  return (static_cast<float>(bits >> 9) + 0.5f) * (1.0f / 8388608.0f);
}

struct StreamKey {
  uint32_t k0, k1;
};

WB_HD StreamKey stream_key(uint64_t seed) {
  return StreamKey{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)};
}

// The four uniforms of units 4g .. 4g+3 of one chain at one step.
WB_HD Philox4 stream_block(StreamKey key, uint32_t group, uint32_t chain, uint32_t step,
                           uint32_t stream) {
  return philox4x32_10(group, chain, step, stream, key.k0, key.k1);
}

// Two standard normals from two uniforms (Box-Muller): lanes (0, 1) and (2, 3) of a block.
// fast_logf and sincos_2pi keep it free of library calls, so CPU loops over it vectorize and
// host and device give the same numbers.
WB_HD void box_muller(float ua, float ub, float* n0, float* n1) {
  const float r = sqrtf(-2.0f * fast_logf(ua));
  float s, c;
  sincos_2pi(ub, &s, &c);
  *n0 = r * c;
  *n1 = r * s;
}

// The four normals of a block, in lane order.
WB_HD void normals_of_block(const Philox4& b, float out[4]) {
  box_muller(u01(b.v[0]), u01(b.v[1]), &out[0], &out[1]);
  box_muller(u01(b.v[2]), u01(b.v[3]), &out[2], &out[3]);
}

}  // namespace wb
