// Corruption and the random stream on the GPU: thin kernels over csrc/walkback/elementwise.h,
// one thread per group of 4 units (one Philox block) of one chain (cuda/quads.cuh).
#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda/corrupt.h"
#include "cuda/quads.cuh"
#include "walkback/elementwise.h"
#include "walkback/rng.h"

namespace wb::cuda {
namespace {

void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

template <class T>
__global__ void corrupt_kernel(const T* x, T* out, Quads q, Corruption kind, T param,
                               StreamKey key, uint32_t step, uint32_t first_chain) {
  for (int64_t t = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; t < q.total;
       t += int64_t(gridDim.x) * blockDim.x) {
    int64_t c, g;
    q.split(t, c, g);
    const int n = q.count(g);
    float r[4] = {0.f, 0.f, 0.f, 0.f};
    if (kind != Corruption::None) {
      const Philox4 b = stream_block(key, static_cast<uint32_t>(g),
                                     first_chain + static_cast<uint32_t>(c), step,
                                     kStreamCorrupt);
      if (corruption_needs_normal(kind)) {
        normals_of_block(b, r);
      } else {
        for (int l = 0; l < 4; ++l) r[l] = u01(b.v[l]);
      }
    }
    T v[4];
    const int64_t at = c * q.units + 4 * g;
    load4(x + at, n, q.vec, v);
    for (int l = 0; l < 4; ++l) v[l] = corrupt_value<T>(kind, param, v[l], r[l], r[l]);
    store4(out + at, n, q.vec, v);
  }
}

__global__ void random_kernel(bool normal, StreamKey key, uint32_t step, uint32_t first_chain,
                              uint32_t stream_id, int64_t chains, int64_t units, float* out) {
  const int64_t groups = (units + 3) / 4;
  const int64_t g = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t c = blockIdx.y;
  if (g >= groups || c >= chains) return;
  const Philox4 b = stream_block(key, static_cast<uint32_t>(g), first_chain + static_cast<uint32_t>(c),
                                 step, stream_id);
  float r[4];
  if (normal) {
    normals_of_block(b, r);
  } else {
    for (int l = 0; l < 4; ++l) r[l] = u01(b.v[l]);
  }
  for (int l = 0; l < 4; ++l) {
    const int64_t i = 4 * g + l;
    if (i < units) out[c * units + i] = r[l];
  }
}

template <class T>
__global__ void check_values_kernel(const T* x, int64_t n, bool binary, uint32_t* flags) {
  uint32_t f = 0;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    const T v = x[i];
    if (!isfinite(v))
      f |= 1u;
    else if (binary && v != T(0) && v != T(1))
      f |= 2u;
  }
  if (f) atomicOr(flags, f);  // rare: only bad data writes
}

dim3 grid_for(int64_t chains, int64_t units, int threads) {
  const int64_t groups = (units + 3) / 4;
  if (chains > 65535) throw std::invalid_argument("corrupt: more than 65535 chains per call");
  return dim3(static_cast<unsigned>((groups + threads - 1) / threads), static_cast<unsigned>(chains));
}

}  // namespace

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

void corrupt(const void* x, void* out, int64_t chains, int64_t units, int dtype_size,
             Corruption kind, double param, uint64_t seed, uint32_t step, uint32_t first_chain,
             uintptr_t stream) {
  if (chains == 0 || units == 0) return;
  constexpr int kThreads = 256;
  const Quads q = make_quads(chains, units, {x, out});
  const unsigned blocks = static_cast<unsigned>(
      std::min<int64_t>((q.total + kThreads - 1) / kThreads, int64_t(1) << 20));
  auto s = reinterpret_cast<cudaStream_t>(stream);
  const StreamKey key = stream_key(seed);
  if (dtype_size == 8)
    corrupt_kernel<double><<<blocks, kThreads, 0, s>>>(static_cast<const double*>(x),
                                                       static_cast<double*>(out), q, kind, param,
                                                       key, step, first_chain);
  else
    corrupt_kernel<float><<<blocks, kThreads, 0, s>>>(static_cast<const float*>(x),
                                                      static_cast<float*>(out), q, kind,
                                                      static_cast<float>(param), key, step,
                                                      first_chain);
  check(cudaGetLastError(), "corrupt kernel launch");
}

uint32_t check_values(const void* x, int64_t n, int dtype_size, bool binary, uintptr_t stream) {
  if (n == 0) return 0;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  uint32_t* flags = nullptr;
  check(cudaMallocAsync(reinterpret_cast<void**>(&flags), sizeof(uint32_t), s), "cudaMallocAsync");
  check(cudaMemsetAsync(flags, 0, sizeof(uint32_t), s), "cudaMemsetAsync");
  launch_check_values(x, n, dtype_size, binary, flags, stream);
  uint32_t out = 0;
  check(cudaMemcpyAsync(&out, flags, sizeof out, cudaMemcpyDeviceToHost, s), "cudaMemcpyAsync");
  check(cudaFreeAsync(flags, s), "cudaFreeAsync");
  check(cudaStreamSynchronize(s), "cudaStreamSynchronize");
  return out;
}

void launch_check_values(const void* x, int64_t n, int dtype_size, bool binary, uint32_t* flags,
                         uintptr_t stream) {
  if (n == 0) return;
  auto s = reinterpret_cast<cudaStream_t>(stream);
  const unsigned blocks = static_cast<unsigned>(std::min<int64_t>((n + 255) / 256, 4096));
  if (dtype_size == 8)
    check_values_kernel<double><<<blocks, 256, 0, s>>>(static_cast<const double*>(x), n, binary,
                                                       flags);
  else
    check_values_kernel<float><<<blocks, 256, 0, s>>>(static_cast<const float*>(x), n, binary,
                                                      flags);
  check(cudaGetLastError(), "check_values kernel launch");
}

void random_array(bool normal, uint64_t seed, uint32_t step, uint32_t first_chain,
                  uint32_t stream_id, int64_t chains, int64_t units, float* out,
                  uintptr_t stream) {
  if (chains == 0 || units == 0) return;
  constexpr int kThreads = 128;
  const dim3 grid = grid_for(chains, units, kThreads);
  random_kernel<<<grid, kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      normal, stream_key(seed), step, first_chain, stream_id, chains, units, out);
  check(cudaGetLastError(), "random kernel launch");
}

}  // namespace wb::cuda
