// pybind11 bindings of the evaluation kernels (Parzen windows, the GEMM log-sum-exp of CSL).
#pragma once
#include <pybind11/pybind11.h>

namespace wb::bind {
void bind_eval(pybind11::module_& mod);
}
