#include "bindings/sequence_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <stdexcept>
#include <type_traits>

#include "bindings/array_checks.h"
#include "walkback/conv1d.h"
#include "walkback/sequence_gsn.h"

namespace py = pybind11;

namespace wb::bind {
namespace {

// The shapes of a convolution of x (N, L, C) with F filters of `width` taps; lengths: int32 (N,).
template <class T>
std::pair<SeqShape, Conv1d> conv_of(const py::array& x, int64_t width,
                                    const std::optional<py::array>& lengths, int64_t F) {
  check_array(x, "x", py::dtype::of<T>(), {-1, -1, -1}, false);
  if (width < 1 || width % 2 == 0) throw py::value_error("width: expected an odd number >= 1");
  SeqShape s;
  s.N = x.shape(0);
  s.L = x.shape(1);
  if (lengths) {
    check_array(*lengths, "lengths", py::dtype::of<int32_t>(), {s.N}, false);
    s.lengths = in_ptr<int32_t>(*lengths);
  }
  Conv1d c;
  c.C = x.shape(2);
  c.F = F;
  c.width = width;
  return {s, c};
}

// The same with the filters from W (width * C, F).
template <class T>
std::pair<SeqShape, Conv1d> shapes(const py::array& x, const py::array& W, int64_t width,
                                   const std::optional<py::array>& lengths) {
  auto sc = conv_of<T>(x, width, lengths, W.ndim() == 2 ? W.shape(1) : 0);
  check_array(W, "W", py::dtype::of<T>(), {width * x.shape(2), -1}, false);
  return sc;
}

// W (taps x F) packed for walkback's kernel, as op(B) = W, or W^T when `transposed` (float;
// the tests' way into conv1d's packed path). Empty for double.
template <class T>
PackedWeights pack_filters(const T* W, int64_t taps, int64_t F, bool transposed) {
  PackedWeights w;
  if constexpr (std::is_same_v<T, float>) {
    if (!packed_gemm_supported())
      throw std::runtime_error("packed: the packed GEMM is not available on this processor");
    transposed ? w.pack(W, F, true, F, taps) : w.pack(W, F, false, taps, F);
  } else {
    throw std::invalid_argument("packed: the packed GEMM is float32 only");
  }
  return w;
}

template <class T>
void forward_t(py::array x, py::array W, std::optional<py::array> b, int64_t width,
               std::optional<py::array> lengths, py::array cols, py::array y, bool packed) {
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
  const PackedWeights w = packed ? pack_filters<T>(pw, c.taps(), c.F, false) : PackedWeights();
  conv1d_forward<T>(s, c, px, c.C, pw, pb, pc, py_, &w);
}

// cols (N * L, width * C) = im2col(x): what the weight gradient reads.
template <class T>
void im2col_t(py::array x, int64_t width, std::optional<py::array> lengths, py::array cols) {
  auto [s, c] = conv_of<T>(x, width, lengths, 1);
  check_array(cols, "cols", py::dtype::of<T>(), {s.rows(), c.taps()}, true);
  const T* px = in_ptr<T>(x);
  T* pc = out_ptr<T>(cols);
  py::gil_scoped_release nogil;
  im2col<T>(s, c, px, c.C, pc);
}

// out (N, L, C) += conv^T(h), h (N, L, F); x only gives the shapes (it is `out`).
template <class T>
void transpose_t(py::array h, py::array W, int64_t width, std::optional<py::array> lengths,
                 py::array work, py::array out, bool packed) {
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
  const PackedWeights w = packed ? pack_filters<T>(pw, c.taps(), c.F, true) : PackedWeights();
  conv1d_transpose_add<T>(s, c, ph, pw, pk, po, c.C, &w);
}

// dW += cols^T dy, db += column sums of dy: rows past a length must be zero in dy (the
// Python layer masks them).
template <class T>
void param_grad_t(py::array cols, py::array dy, py::array dW, std::optional<py::array> db) {
  const auto dt = py::dtype::of<T>();
  check_array(dy, "dy", dt, {-1, -1, -1}, false);
  check_array(dW, "dW", dt, {-1, dy.shape(2)}, true);
  check_array(cols, "cols", dt, {dy.shape(0) * dy.shape(1), dW.shape(0)}, false);
  if (db) check_array(*db, "db", dt, {dy.shape(2)}, true);
  SeqShape s;
  s.N = dy.shape(0);
  s.L = dy.shape(1);
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

bool is_f64(const py::array& a) { return same_dtype(a, py::dtype::of<double>()); }

// The model from keyword arguments (parameters checked against the sizes they imply).
template <class T>
SeqGsnModel<T> seq_model(const py::dict& kw) {
  SeqGsnModel<T> m;
  m.Cin = kw["in_channels"].cast<int64_t>();
  m.K = kw["classes"].cast<int64_t>();
  m.C1 = kw["c1"].cast<int64_t>();
  m.C2 = kw["c2"].cast<int64_t>();
  m.width = kw["width"].cast<int64_t>();
  m.pool = kw["pool"].cast<int64_t>();
  m.noise_pre = static_cast<T>(kw["noise_pre"].cast<double>());
  m.noise_post = static_cast<T>(kw["noise_post"].cast<double>());
  m.corruption = static_cast<T>(kw["corruption"].cast<double>());
  if (m.Cin < 1 || m.K < 2 || m.C1 < 1 || m.C2 < 1 || m.width < 1 || m.pool < 1)
    throw py::value_error("sequence GSN: sizes must be positive (classes >= 2)");
  const auto dt = py::dtype::of<T>();
  auto param = [&](const char* name, std::vector<py::ssize_t> shape) {
    py::array a = kw[name].cast<py::array>();
    check_array(a, name, dt, shape, false);
    return in_ptr<T>(a);
  };
  m.W1 = param("W1", {m.width * (m.Cin + m.K), m.C1});
  m.b1 = param("b1", {m.C1});
  m.W2 = param("W2", {m.width * m.C1, m.C2});
  m.b2 = param("b2", {m.C2});
  m.c = param("c", {m.K});
  return m;
}

template <class T>
SeqGsnArgs seq_args(const py::array& x, const py::array& lengths, const py::dict& kw) {
  check_array(x, "x", py::dtype::of<T>(), {-1, -1, kw["in_channels"].cast<int64_t>()}, false);
  check_array(lengths, "lengths", py::dtype::of<int32_t>(), {x.shape(0)}, false);
  SeqGsnArgs a;
  a.N = x.shape(0);
  a.L = x.shape(1);
  a.lengths = in_ptr<int32_t>(lengths);
  a.steps = kw["steps"].cast<int64_t>();
  if (a.steps < 1) throw py::value_error("steps: expected at least 1");
  a.seed = kw["seed"].cast<uint64_t>();
  a.first_chain = kw["first_chain"].cast<uint32_t>();
  a.noise = kw["noise"].cast<bool>();
  return a;
}

template <class T>
double seq_walkback_t(py::array x, py::array y, py::array lengths, py::dict kw,
                      std::optional<py::dict> grads) {
  const SeqGsnModel<T> m = seq_model<T>(kw);
  const SeqGsnArgs a = seq_args<T>(x, lengths, kw);
  check_array(y, "y", py::dtype::of<int32_t>(), {a.N, a.L}, false);
  SeqGsnGrads<T> g;
  if (grads) {
    auto out = [&](const char* name, std::vector<py::ssize_t> shape) {
      py::array arr = (*grads)[name].cast<py::array>();
      check_array(arr, name, py::dtype::of<T>(), shape, true);
      return out_ptr<T>(arr);
    };
    g.W1 = out("W1", {m.width * (m.Cin + m.K), m.C1});
    g.b1 = out("b1", {m.C1});
    g.W2 = out("W2", {m.width * m.C1, m.C2});
    g.b2 = out("b2", {m.C2});
    g.c = out("c", {m.K});
  }
  const T* px = in_ptr<T>(x);
  const int32_t* pyl = in_ptr<int32_t>(y);
  py::gil_scoped_release nogil;
  return seq_gsn_walkback<T>(m, a, px, pyl, grads ? &g : nullptr);
}

template <class T>
void seq_predict_t(py::array x, py::array lengths, py::dict kw, int64_t burn_in, py::array out) {
  const SeqGsnModel<T> m = seq_model<T>(kw);
  const SeqGsnArgs a = seq_args<T>(x, lengths, kw);
  check_array(out, "out", py::dtype::of<T>(), {a.N, a.L, m.K}, true);
  const T* px = in_ptr<T>(x);
  T* po = out_ptr<T>(out);
  py::gil_scoped_release nogil;
  seq_gsn_predict<T>(m, a, px, burn_in, po);
}

}  // namespace

void bind_sequence(py::module_& mod) {
  mod.def("seq_gsn_walkback", [](py::array x, py::array y, py::array lengths, py::dict kw,
                                 std::optional<py::dict> grads) {
    return is_f64(x) ? seq_walkback_t<double>(x, y, lengths, kw, grads)
                     : seq_walkback_t<float>(x, y, lengths, kw, grads);
  });
  mod.def("seq_gsn_predict", [](py::array x, py::array lengths, py::dict kw, int64_t burn_in,
                                py::array out) {
    is_f64(x) ? seq_predict_t<double>(x, lengths, kw, burn_in, out)
              : seq_predict_t<float>(x, lengths, kw, burn_in, out);
  });
  mod.def("conv1d_forward", [](py::array x, py::array W, std::optional<py::array> b,
                               int64_t width, std::optional<py::array> lengths, py::array cols,
                               py::array y, bool packed) {
    is_f64(x) ? forward_t<double>(x, W, b, width, lengths, cols, y, packed)
              : forward_t<float>(x, W, b, width, lengths, cols, y, packed);
  }, py::arg("x"), py::arg("W"), py::arg("b"), py::arg("width"), py::arg("lengths"),
     py::arg("cols"), py::arg("y"), py::arg("packed") = false);
  mod.def("conv1d_im2col", [](py::array x, int64_t width, std::optional<py::array> lengths,
                              py::array cols) {
    is_f64(x) ? im2col_t<double>(x, width, lengths, cols)
              : im2col_t<float>(x, width, lengths, cols);
  });
  mod.def("conv1d_transpose_add", [](py::array h, py::array W, int64_t width,
                                     std::optional<py::array> lengths, py::array work,
                                     py::array out, bool packed) {
    is_f64(h) ? transpose_t<double>(h, W, width, lengths, work, out, packed)
              : transpose_t<float>(h, W, width, lengths, work, out, packed);
  }, py::arg("h"), py::arg("W"), py::arg("width"), py::arg("lengths"), py::arg("work"),
     py::arg("out"), py::arg("packed") = false);
  mod.def("conv1d_param_grad", [](py::array cols, py::array dy, py::array dW,
                                  std::optional<py::array> db) {
    is_f64(dy) ? param_grad_t<double>(cols, dy, dW, db) : param_grad_t<float>(cols, dy, dW, db);
  });
}

}  // namespace wb::bind
