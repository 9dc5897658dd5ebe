// cuBLAS loaded at run time (dlopen), not linked: the machines that build walkback have a CUDA
// toolkit without cuBLAS, and GPU users have it beside CuPy (the nvidia-cublas wheel) or in a
// CUDA installation. Only the few entry points walkback calls are declared, with cuBLAS's ABI
// (handles are pointers, enums are ints, cublasStatus_t 0 is success).
#pragma once
#include <cuda_runtime.h>

#include <string>
#include <vector>

namespace wb::cuda {

struct CublasContext;
using CublasHandle = CublasContext*;

struct Cublas {
  int (*create)(CublasHandle*) = nullptr;
  int (*destroy)(CublasHandle) = nullptr;
  int (*set_stream)(CublasHandle, cudaStream_t) = nullptr;
  int (*set_workspace)(CublasHandle, void*, size_t) = nullptr;
  int (*sgemm)(CublasHandle, int, int, int, int, int, const float*, const float*, int,
               const float*, int, const float*, float*, int) = nullptr;
  int (*dgemm)(CublasHandle, int, int, int, int, int, const double*, const double*, int,
               const double*, int, const double*, double*, int) = nullptr;
  int (*sgemv)(CublasHandle, int, int, int, const float*, const float*, int, const float*, int,
               const float*, float*, int) = nullptr;
  int (*dgemv)(CublasHandle, int, int, int, const double*, const double*, int, const double*,
               int, const double*, double*, int) = nullptr;
  std::string origin;  // the file (or soname) it was loaded from
};

// Loads cuBLAS once per process: a copy already in the process (CuPy's, say) first, then each
// of `paths` in order, then the sonames libcublas.so.13 and .12. Throws std::runtime_error
// naming every place tried. Later calls return the loaded one and ignore `paths`.
const Cublas& load_cublas(const std::vector<std::string>& paths);

// The loaded cuBLAS; throws when load_cublas has not succeeded yet.
const Cublas& cublas();

// Throws std::runtime_error naming `what` and the status when a cuBLAS call failed.
void check_cublas(int status, const char* what);

}  // namespace wb::cuda
