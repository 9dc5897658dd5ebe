#include "bindings/sequence_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>

#include "bindings/array_checks.h"
#include "walkback/conv1d.h"

namespace py = pybind11;

namespace wb::bind {
namespace {

// The shapes of a convolution from x (N, L, C) and W (width * C, F); lengths: int32 (N,).
template <class T>
std::pair<SeqShape, Conv1d> shapes(const py::array& x, const py::array& W, int64_t width,
                                   const std::optional<py::array>& lengths) {
  const auto dt = py::dtype::of<T>();
  check_array(x, "x", dt, {-1, -1, -1}, false);
  if (width < 1 || width % 2 == 0) throw py::value_error("width: expected an odd number >= 1");
  check_array(W, "W", dt, {width * x.shape(2), -1}, false);
  SeqShape s;
  s.N = x.shape(0);
  s.L = x.shape(1);
  if (lengths) {
    check_array(*lengths, "lengths", py::dtype::of<int32_t>(), {s.N}, false);
    s.lengths = in_ptr<int32_t>(*lengths);
  }
  Conv1d c;
  c.C = x.shape(2);
  c.F = W.shape(1);
  c.width = width;
  return {s, c};
}

template <class T>
void forward_t(py::array x, py::array W, std::optional<py::array> b, int64_t width,
               std::optional<py::array> lengths, py::array cols, py::array y) {
  auto [s, c] = shapes<T>(x, W, width, lengths);
  const auto dt = py::dtype::of<T>();
  if (b) check_array(*b, "b", dt, {c.F}, false);
  check_array(cols, "cols", dt, {s.rows(), c.taps()}, true);
  check_array(y, "y", dt, {s.N, s.L, c.F}, true);
  const T* pb = b ? in_ptr<T>(*b) : nullptr;
  const T* px = in_ptr<T>(x);
  const T* pw = in_ptr<T>(W);
  T* pc = out_ptr<T>(cols);
  T* py_ = out_ptr<T>(y);
  py::gil_scoped_release nogil;
  conv1d_forward<T>(s, c, px, c.C, pw, pb, pc, py_);
}

// out (N, L, C) += conv^T(h), h (N, L, F); x only gives the shapes (it is `out`).
template <class T>
void transpose_t(py::array h, py::array W, int64_t width, std::optional<py::array> lengths,
                 py::array work, py::array out) {
  auto [s, c] = shapes<T>(out, W, width, lengths);
  const auto dt = py::dtype::of<T>();
  check_array(h, "h", dt, {s.N, s.L, c.F}, false);
  check_array(work, "work", dt, {s.rows(), c.taps()}, true);
  check_array(out, "out", dt, {s.N, s.L, c.C}, true);
  const T* ph = in_ptr<T>(h);
  const T* pw = in_ptr<T>(W);
  T* pk = out_ptr<T>(work);
  T* po = out_ptr<T>(out);
  py::gil_scoped_release nogil;
  conv1d_transpose_add<T>(s, c, ph, pw, pk, po, c.C);
}

template <class T>
void param_grad_t(py::array cols, py::array dy, std::optional<py::array> lengths, py::array dW,
                  std::optional<py::array> db) {
  const auto dt = py::dtype::of<T>();
  check_array(dy, "dy", dt, {-1, -1, -1}, false);
  check_array(dW, "dW", dt, {-1, dy.shape(2)}, true);
  check_array(cols, "cols", dt, {dy.shape(0) * dy.shape(1), dW.shape(0)}, false);
  if (db) check_array(*db, "db", dt, {dy.shape(2)}, true);
  SeqShape s;
  s.N = dy.shape(0);
  s.L = dy.shape(1);
  if (lengths) {
    check_array(*lengths, "lengths", py::dtype::of<int32_t>(), {s.N}, false);
    s.lengths = in_ptr<int32_t>(*lengths);
  }
  Conv1d c;
  c.F = dy.shape(2);
  c.C = dW.shape(0);  // taps: the product width * C is all the GEMM needs
  c.width = 1;
  const T* pc = in_ptr<T>(cols);
  const T* pd = in_ptr<T>(dy);
  T* pw = out_ptr<T>(dW);
  T* pb = db ? out_ptr<T>(*db) : nullptr;
  py::gil_scoped_release nogil;
  conv1d_param_grad<T>(s, c, pc, pd, pw, pb);
}

bool is_f64(const py::array& a) { return a.dtype().is(py::dtype::of<double>()); }

}  // namespace

void bind_sequence(py::module_& mod) {
  mod.def("conv1d_forward", [](py::array x, py::array W, std::optional<py::array> b,
                               int64_t width, std::optional<py::array> lengths, py::array cols,
                               py::array y) {
    is_f64(x) ? forward_t<double>(x, W, b, width, lengths, cols, y)
              : forward_t<float>(x, W, b, width, lengths, cols, y);
  });
  mod.def("conv1d_transpose_add", [](py::array h, py::array W, int64_t width,
                                     std::optional<py::array> lengths, py::array work,
                                     py::array out) {
    is_f64(h) ? transpose_t<double>(h, W, width, lengths, work, out)
              : transpose_t<float>(h, W, width, lengths, work, out);
  });
  mod.def("conv1d_param_grad", [](py::array cols, py::array dy, std::optional<py::array> lengths,
                                  py::array dW, std::optional<py::array> db) {
    is_f64(dy) ? param_grad_t<double>(cols, dy, lengths, dW, db)
               : param_grad_t<float>(cols, dy, lengths, dW, db);
  });
}

}  // namespace wb::bind
