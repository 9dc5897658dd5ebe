// The CUDA extension: raw device pointers (read from __cuda_array_interface__ on the Python
// side) and CuPy's current stream in, kernels of cuda/ launched, no maths here.
#include <pybind11/pybind11.h>

#include <stdexcept>

#include "cuda/corrupt.h"

namespace py = pybind11;

PYBIND11_MODULE(_walkback_cuda, mod) {
  mod.doc() = "walkback's CUDA kernels (internal: use walkback.ops with CuPy arrays)";
  mod.def("device_count", &wb::cuda::device_count);
  mod.def("corrupt", [](uintptr_t x, uintptr_t out, int64_t chains, int64_t units,
                        int dtype_size, int kind, double param, uint64_t seed, uint32_t step,
                        uint32_t first_chain, uintptr_t stream) {
    if (dtype_size != 4 && dtype_size != 8)
      throw py::value_error("corrupt: dtype_size must be 4 or 8");
    if (chains < 0 || units < 0) throw py::value_error("corrupt: negative extent");
    wb::cuda::corrupt(reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out), chains,
                      units, dtype_size, static_cast<wb::Corruption>(kind), param, seed, step,
                      first_chain, stream);
  });
  mod.def("random", [](bool normal, uint64_t seed, uint32_t step, uint32_t first_chain,
                       uint32_t stream_id, int64_t chains, int64_t units, uintptr_t out,
                       uintptr_t stream) {
    wb::cuda::random_array(normal, seed, step, first_chain, stream_id, chains, units,
                           reinterpret_cast<float*>(out), stream);
  });
}
