// pybind11 bindings of the sequence kernels (1-D convolutions along sequences).
#pragma once
#include <pybind11/pybind11.h>

namespace wb::bind {
void bind_sequence(pybind11::module_& mod);
}
