// pybind11 bindings of the diffusion kernels (diffusion_bound, diffusion_reverse).
#pragma once
#include <pybind11/pybind11.h>

namespace wb::bind {
void bind_diffusion(pybind11::module_& mod);
}
