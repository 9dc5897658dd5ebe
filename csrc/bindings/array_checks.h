// Argument checks shared by the pybind11 modules: dtype, shape, contiguity, writeability.
// Messages name the argument and say what was expected and what was got.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace wb::bind {
namespace py = pybind11;

inline std::string shape_str(const py::array& a) {
  std::ostringstream s;
  s << "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) s << (i ? ", " : "") << a.shape(i);
  s << (a.ndim() == 1 ? ",)" : ")");
  return s.str();
}

// Whether a's dtype is equivalent to `dtype` (not the same object: an unpickled or copied
// np.dtype('float32') is a new dtype object equal to the builtin one).
inline bool same_dtype(const py::array& a, const py::dtype& dtype) {
  return py::detail::npy_api::get().PyArray_EquivTypes_(a.dtype().ptr(), dtype.ptr());
}

// -1 in `shape` accepts any extent.
inline void check_array(const py::array& a, const char* name, const py::dtype& dtype,
                        const std::vector<py::ssize_t>& shape, bool writeable) {
  if (!same_dtype(a, dtype))
    throw py::type_error(std::string(name) + ": expected dtype " + py::str(dtype).cast<std::string>() +
                         ", got " + py::str(a.dtype()).cast<std::string>());
  bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
  for (size_t i = 0; ok && i < shape.size(); ++i) ok = shape[i] < 0 || a.shape(i) == shape[i];
  if (!ok) {
    std::ostringstream s;
    s << name << ": expected shape (";
    for (size_t i = 0; i < shape.size(); ++i) {
      s << (i ? ", " : "");
      if (shape[i] < 0) s << "*"; else s << shape[i];
    }
    s << (shape.size() == 1 ? ",)" : ")") << ", got " << shape_str(a);
    throw py::value_error(s.str());
  }
  if (!(a.flags() & py::array::c_style))
    throw py::value_error(std::string(name) + ": expected a C-contiguous array");
  if (writeable && !a.writeable())
    throw py::value_error(std::string(name) + ": expected a writeable array");
  for (py::ssize_t i = 0; i < a.ndim(); ++i)
    if (a.shape(i) >= (py::ssize_t(1) << 31))
      throw py::value_error(std::string(name) + ": extent above 2**31 - 1 is not supported");
}

template <class T>
const T* in_ptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}
template <class T>
T* out_ptr(py::array& a) {
  return static_cast<T*>(a.mutable_data());
}

// The keyword argument k as an array, or nothing when it is absent or None.
inline std::optional<py::array> opt_array(const py::kwargs& kw, const char* k) {
  if (!kw.contains(k) || kw[k].is_none()) return std::nullopt;
  return kw[k].cast<py::array>();
}

}  // namespace wb::bind
