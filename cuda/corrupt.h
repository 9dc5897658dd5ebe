// CUDA drivers of walkback (host side declarations): raw device pointers and a stream.
#pragma once
#include <cstdint>

#include "walkback/common.h"

namespace wb::cuda {

// Number of CUDA devices visible (0 without a GPU or driver); never throws.
int device_count();

// out = corrupt(x) for a (chains x units) batch on `stream`; same stream as the CPU version.
// dtype_size: 4 (float32) or 8 (float64). Throws std::runtime_error on a launch error.
void corrupt(const void* x, void* out, int64_t chains, int64_t units, int dtype_size,
             Corruption kind, double param, uint64_t seed, uint32_t step, uint32_t first_chain,
             uintptr_t stream);

// The uniforms (or normals) of the stream, (chains x units) float32, as on the CPU.
void random_array(bool normal, uint64_t seed, uint32_t step, uint32_t first_chain,
                  uint32_t stream_id, int64_t chains, int64_t units, float* out,
                  uintptr_t stream);

// Bits of what x (n values) holds: 1 = NaN or infinite values, 2 = (when `binary`) finite values
// other than 0 and 1. One pass and one synchronization of `stream`.
uint32_t check_values(const void* x, int64_t n, int dtype_size, bool binary, uintptr_t stream);
// The check's kernel alone: ORs those bits into *flags (device memory, zeroed by the caller).
void launch_check_values(const void* x, int64_t n, int dtype_size, bool binary, uint32_t* flags,
                         uintptr_t stream);

}  // namespace wb::cuda
