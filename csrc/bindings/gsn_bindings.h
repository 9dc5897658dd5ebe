// pybind11 bindings of the GSN kernels (gsn_chain, gsn_walkback) into the CPU module.
#pragma once
#include <pybind11/pybind11.h>

namespace wb::bind {
void bind_gsn(pybind11::module_& mod);
}
