// How kernels walk a (rows x units) batch by Philox groups: thread t of a flat, grid-strided
// range takes the 4 units of group g of row c (no idle threads at the end of each row), and
// moves them with 16-byte accesses when every group starts aligned.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>

namespace wb::cuda {

// The groups of a batch: `rows` rows of `units`, (units + 3) / 4 groups per row.
struct Quads {
  int64_t rows, units, groups, total;
  bool vec;     // units % 4 == 0 and every pointer 16-byte aligned: vector accesses
  bool narrow;  // total < 2^32: 32-bit division finds (row, group)

  __device__ __forceinline__ void split(int64_t t, int64_t& c, int64_t& g) const {
    if (narrow) {
      const uint32_t q = uint32_t(t) / uint32_t(groups);
      c = q;
      g = int64_t(uint32_t(t) - q * uint32_t(groups));
    } else {
      c = t / groups;
      g = t - c * groups;
    }
  }
  // The units of group g that exist (4, or fewer in a row's last group).
  __device__ __forceinline__ int count(int64_t g) const {
    const int64_t left = units - 4 * g;
    return left < 4 ? int(left) : 4;
  }
};

inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

// `pointers`: every array the kernel reads or writes by group (nullptr entries are skipped).
inline Quads make_quads(int64_t rows, int64_t units, std::initializer_list<const void*> pointers) {
  Quads q;
  q.rows = rows;
  q.units = units;
  q.groups = (units + 3) / 4;
  q.total = rows * q.groups;
  q.vec = units % 4 == 0;
  for (const void* p : pointers)
    if (p && !aligned16(p)) q.vec = false;
  q.narrow = q.total < (int64_t(1) << 32);
  return q;
}

template <class T>
__device__ __forceinline__ void load4(const T* p, int n, bool vec, T out[4]) {
  if (vec) {
    if constexpr (sizeof(T) == 4) {
      const float4 v = *reinterpret_cast<const float4*>(p);
      out[0] = v.x, out[1] = v.y, out[2] = v.z, out[3] = v.w;
    } else {
      const double2 a = reinterpret_cast<const double2*>(p)[0];
      const double2 b = reinterpret_cast<const double2*>(p)[1];
      out[0] = a.x, out[1] = a.y, out[2] = b.x, out[3] = b.y;
    }
    return;
  }
#pragma unroll
  for (int l = 0; l < 4; ++l) out[l] = l < n ? p[l] : T(0);
}

template <class T>
__device__ __forceinline__ void store4(T* p, int n, bool vec, const T v[4]) {
  if (vec) {
    if constexpr (sizeof(T) == 4) {
      *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
      reinterpret_cast<double2*>(p)[0] = make_double2(v[0], v[1]);
      reinterpret_cast<double2*>(p)[1] = make_double2(v[2], v[3]);
    }
    return;
  }
  // A constant trip count, so that v stays in registers: `l < n` as the loop bound would index
  // v at run time and put it in local memory (a stack frame in every kernel that stores).
#pragma unroll
  for (int l = 0; l < 4; ++l)
    if (l < n) p[l] = v[l];
}

}  // namespace wb::cuda
