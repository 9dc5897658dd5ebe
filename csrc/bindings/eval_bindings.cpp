#include "bindings/eval_bindings.h"

#include <pybind11/numpy.h>

#include "bindings/array_checks.h"
#include "walkback/parzen.h"

namespace py = pybind11;

namespace wb::bind {
namespace {

template <class T>
void parzen_t(py::array s, py::array x, double sigma, py::array out) {
  const auto dt = py::dtype::of<T>();
  check_array(s, "samples", dt, {-1, -1}, false);
  const py::ssize_t D = s.shape(1);
  check_array(x, "x", dt, {-1, D}, false);
  check_array(out, "out", py::dtype::of<double>(), {x.shape(0)}, true);
  if (!(sigma > 0)) throw py::value_error("sigma: expected a positive number");
  const T* ps = in_ptr<T>(s);
  const T* px = in_ptr<T>(x);
  double* po = out_ptr<double>(out);
  const int64_t N = s.shape(0), M = x.shape(0);
  py::gil_scoped_release nogil;
  parzen_logpdf<T>(ps, N, px, M, D, sigma, po);
}

template <class T>
void lse_t(py::array a, py::array b, double scale, py::array col, py::array row, py::array out) {
  const auto dt = py::dtype::of<T>();
  check_array(a, "a", dt, {-1, -1}, false);
  const py::ssize_t D = a.shape(1);
  check_array(b, "b", dt, {-1, D}, false);
  check_array(col, "col_term", dt, {b.shape(0)}, false);
  check_array(row, "row_term", py::dtype::of<double>(), {a.shape(0)}, false);
  check_array(out, "out", py::dtype::of<double>(), {a.shape(0)}, true);
  const T* pa = in_ptr<T>(a);
  const T* pb = in_ptr<T>(b);
  const T* pc = in_ptr<T>(col);
  const double* pr = in_ptr<double>(row);
  double* po = out_ptr<double>(out);
  const int64_t M = a.shape(0), N = b.shape(0);
  py::gil_scoped_release nogil;
  gemm_logsumexp<T>(pa, M, pb, N, D, static_cast<T>(scale), pc, pr, po);
}

bool is_f64(const py::array& x) { return same_dtype(x, py::dtype::of<double>()); }

}  // namespace

void bind_eval(py::module_& mod) {
  mod.def("parzen_logpdf", [](py::array s, py::array x, double sigma, py::array out) {
    is_f64(s) ? parzen_t<double>(s, x, sigma, out) : parzen_t<float>(s, x, sigma, out);
  });
  // out[j] = row[j] + logsumexp_i(scale * a_j . b_i + col[i])
  mod.def("gemm_logsumexp", [](py::array a, py::array b, double scale, py::array col,
                               py::array row, py::array out) {
    is_f64(a) ? lse_t<double>(a, b, scale, col, row, out)
              : lse_t<float>(a, b, scale, col, row, out);
  });
}

}  // namespace wb::bind
