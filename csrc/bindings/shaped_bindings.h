// pybind11 bindings of the ABC-shaped chain (walkback/shaped_chain.h).
#pragma once
#include <pybind11/pybind11.h>

namespace wb::bind {
void bind_shaped(pybind11::module_& mod);
}
