#include "bindings/diffusion_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <optional>
#include <string>

#include "bindings/array_checks.h"
#include "walkback/diffusion.h"

namespace py = pybind11;

namespace wb::bind {
namespace {

bool is_f64(const py::array& x) { return same_dtype(x, py::dtype::of<double>()); }

// The network and the schedule from keyword arguments: kind, W (list), b (list), Wout, bout,
// beta, alphabar, basis (float64), dequantize; checked against D.
template <class T>
DiffusionNet<T> net_from(const py::kwargs& kw, py::ssize_t D) {
  const auto dt = py::dtype::of<T>();
  const auto f64 = py::dtype::of<double>();
  DiffusionNet<T> m;
  const int kind = kw["kind"].cast<int>();
  if (kind != 0 && kind != 1) throw py::value_error("kind: expected 0 (gaussian) or 1 (binomial)");
  m.kind = static_cast<DiffusionKind>(kind);
  m.D = D;
  auto Ws = kw["W"].cast<py::list>(), bs = kw["b"].cast<py::list>();
  if (Ws.size() == 0 || Ws.size() != bs.size())
    throw py::value_error("W, b: expected equally long, non-empty lists of layers");
  py::ssize_t in = D;
  for (size_t l = 0; l < Ws.size(); ++l) {
    const std::string wn = "W[" + std::to_string(l) + "]", bn = "b[" + std::to_string(l) + "]";
    py::array W = Ws[l].cast<py::array>(), b = bs[l].cast<py::array>();
    check_array(W, wn.c_str(), dt, {in, -1}, false);
    check_array(b, bn.c_str(), dt, {W.shape(1)}, false);
    m.hidden.push_back({in, W.shape(1), in_ptr<T>(W), in_ptr<T>(b)});
    in = W.shape(1);
  }
  py::array beta = kw["beta"].cast<py::array>();
  check_array(beta, "beta", f64, {-1}, false);
  m.steps = beta.shape(0);
  if (m.steps < 3) throw py::value_error("beta: expected at least 3 steps");
  py::array ab = kw["alphabar"].cast<py::array>(), basis = kw["basis"].cast<py::array>();
  check_array(ab, "alphabar", f64, {m.steps}, false);
  check_array(basis, "basis", f64, {m.steps, -1}, false);
  m.J = basis.shape(1);
  {
    // The readout takes the steps where a basis function is nonzero as one unbroken run.
    const double* pb = in_ptr<double>(basis);
    for (int64_t j = 0; j < m.J; ++j) {
      int runs = 0;
      bool prev = false;
      for (int64_t t = 0; t < m.steps; ++t) {
        const double v = pb[t * m.J + j];
        if (!(v >= 0)) throw py::value_error("basis: expected non-negative weights");
        const bool on = v != 0.0;
        if (on && !prev) ++runs;
        prev = on;
      }
      if (runs > 1)
        throw py::value_error("basis: each function must be nonzero on one unbroken run of t");
    }
  }
  py::array Wout = kw["Wout"].cast<py::array>(), bout = kw["bout"].cast<py::array>();
  const py::ssize_t cols = D * m.K() * m.J;
  check_array(Wout, "Wout", dt, {in, cols}, false);
  check_array(bout, "bout", dt, {cols}, false);
  m.Wout = in_ptr<T>(Wout);
  m.bout = in_ptr<T>(bout);
  m.beta = in_ptr<double>(beta);
  m.alphabar = in_ptr<double>(ab);
  m.basis = in_ptr<double>(basis);
  m.dequantize = kw["dequantize"].cast<double>();
  return m;
}

template <class T>
double bound_t(py::array x0, py::object t, uint64_t seed, uint32_t first_chain, py::object rows,
               py::object grads, py::object sched, const py::kwargs& kw) {
  const auto dt = py::dtype::of<T>();
  check_array(x0, "x0", dt, {-1, -1}, false);
  const py::ssize_t B = x0.shape(0);
  DiffusionNet<T> m = net_from<T>(kw, x0.shape(1));
  BoundArgs a;
  a.batch = B;
  a.seed = seed;
  a.first_chain = first_chain;
  std::optional<py::array> ta;
  if (!t.is_none()) {
    ta = t.cast<py::array>();
    check_array(*ta, "t", py::dtype::of<int32_t>(), {B}, false);
    const int32_t* pt = in_ptr<int32_t>(*ta);
    for (py::ssize_t r = 0; r < B; ++r)
      if (pt[r] < 2 || pt[r] > m.steps)
        throw py::value_error("t: time steps must lie in [2, steps]");
    a.t = pt;
  }
  double* prow = nullptr;
  py::array ra;
  if (!rows.is_none()) {
    ra = rows.cast<py::array>();
    check_array(ra, "row_loss", py::dtype::of<double>(), {B}, true);
    prow = out_ptr<double>(ra);
  }
  DiffusionGrads<T> g;
  std::vector<py::array> keep;
  if (!grads.is_none()) {
    auto gd = grads.cast<py::dict>();
    auto take = [&](const std::string& name, int64_t r, int64_t c) {
      py::array a = gd[py::str(name)].cast<py::array>();
      if (r > 0)
        check_array(a, name.c_str(), dt, {r, c}, true);
      else
        check_array(a, name.c_str(), dt, {c}, true);
      keep.push_back(a);
      return out_ptr<T>(a);
    };
    for (size_t l = 0; l < m.hidden.size(); ++l) {
      const auto& L = m.hidden[l];
      g.W.push_back(take("W" + std::to_string(l + 1), L.in, L.out));
      g.b.push_back(take("b" + std::to_string(l + 1), 0, L.out));
    }
    const int64_t cols = m.D * m.K() * m.J;
    g.Wout = take("Wout", m.H(), cols);
    g.bout = take("bout", 0, cols);
  }
  // sched: None, or (g_beta, g_abprev, t_out) arrays of B entries (learned schedule).
  py::array sb, sa, st;
  if (!sched.is_none()) {
    if (grads.is_none() || m.kind != DiffusionKind::Gaussian)
      throw py::value_error("schedule gradients need grads and the Gaussian kind");
    auto tup = sched.cast<py::tuple>();
    sb = tup[0].cast<py::array>();
    sa = tup[1].cast<py::array>();
    st = tup[2].cast<py::array>();
    check_array(sb, "g_beta", py::dtype::of<double>(), {B}, true);
    check_array(sa, "g_abprev", py::dtype::of<double>(), {B}, true);
    check_array(st, "t_out", py::dtype::of<int32_t>(), {B}, true);
    a.g_beta = out_ptr<double>(sb);
    a.g_abprev = out_ptr<double>(sa);
    a.t_out = out_ptr<int32_t>(st);
  }
  py::gil_scoped_release nogil;
  return diffusion_bound<T>(m, a, in_ptr<T>(x0), prow, grads.is_none() ? nullptr : &g);
}

template <class T>
void reverse_t(py::array x, int64_t t_hi, int64_t t_lo, uint64_t seed, uint32_t first_chain,
               py::object clamp, py::object known, py::object y, double obs_var,
               const py::kwargs& kw) {
  const auto dt = py::dtype::of<T>();
  check_array(x, "x", dt, {-1, -1}, true);
  const py::ssize_t n = x.shape(0), D = x.shape(1);
  DiffusionNet<T> m = net_from<T>(kw, D);
  if (!(1 <= t_lo && t_lo <= t_hi && t_hi <= m.steps))
    throw py::value_error("t_hi, t_lo: expected 1 <= t_lo <= t_hi <= steps");
  ReverseArgs<T> a;
  a.n = n;
  a.seed = seed;
  a.first_chain = first_chain;
  a.t_hi = t_hi;
  a.t_lo = t_lo;
  py::array ca, ka, ya;
  if (!clamp.is_none()) {
    ca = clamp.cast<py::array>();
    ka = known.cast<py::array>();
    check_array(ca, "clamp", py::dtype::of<uint8_t>(), {n, D}, false);
    check_array(ka, "known", dt, {n, D}, false);
    a.clamp = in_ptr<uint8_t>(ca);
    a.known = in_ptr<T>(ka);
  }
  if (!y.is_none()) {
    if (m.kind != DiffusionKind::Gaussian)
      throw py::value_error("y: a Gaussian observation needs the Gaussian kind");
    if (!(obs_var > 0)) throw py::value_error("obs_var: expected a positive variance");
    ya = y.cast<py::array>();
    check_array(ya, "y", dt, {n, D}, false);
    a.y = in_ptr<T>(ya);
    a.obs_var = obs_var;
  }
  T* px = out_ptr<T>(x);
  py::gil_scoped_release nogil;
  diffusion_reverse<T>(m, a, px);
}

}  // namespace

void bind_diffusion(py::module_& mod) {
  mod.def("diffusion_bound", [](py::array x0, py::object t, uint64_t seed, uint32_t first_chain,
                                py::object rows, py::object grads, py::object sched,
                                py::kwargs kw) {
    return is_f64(x0) ? bound_t<double>(x0, t, seed, first_chain, rows, grads, sched, kw)
                      : bound_t<float>(x0, t, seed, first_chain, rows, grads, sched, kw);
  });
  mod.def("diffusion_reverse", [](py::array x, int64_t t_hi, int64_t t_lo, uint64_t seed,
                                  uint32_t first_chain, py::object clamp, py::object known,
                                  py::object y, double obs_var, py::kwargs kw) {
    is_f64(x) ? reverse_t<double>(x, t_hi, t_lo, seed, first_chain, clamp, known, y, obs_var, kw)
              : reverse_t<float>(x, t_hi, t_lo, seed, first_chain, clamp, known, y, obs_var, kw);
  });
}

}  // namespace wb::bind
