#include "bindings/gsn_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <string>
#include <vector>

#include "bindings/array_checks.h"
#include "bindings/chain_args.h"
#include "walkback/gsn_chain.h"
#include "walkback/gsn_train.h"

namespace py = pybind11;

namespace wb::bind {
namespace {

// The GSN from keyword arguments: W, U (entries None when tied), b as lists; activation,
// noise_pre, noise_post, noiseless_h1; segments as (offset, size, reconstruction, sigma,
// corruption, corruption_param, weight) tuples covering the visible layer in order.
template <class T>
GsnModel<T> gsn_model(const py::kwargs& kw, py::ssize_t D) {
  const auto dt = py::dtype::of<T>();
  const auto W = kw["W"].cast<std::vector<py::object>>();
  const auto U = kw["U"].cast<std::vector<py::object>>();
  const auto b = kw["b"].cast<std::vector<py::object>>();
  const int L = static_cast<int>(W.size());
  if (L < 1 || U.size() != W.size() || b.size() != W.size() + 1)
    throw py::value_error("gsn: expected L >= 1 weights, L decoder entries and L + 1 biases");
  GsnModel<T> m;
  m.L = L;
  m.n.assign(L + 1, 0);
  m.n[0] = D;
  m.W.assign(L + 1, nullptr);
  m.U.assign(L + 1, nullptr);
  m.b.assign(L + 1, nullptr);
  for (int l = 1; l <= L; ++l) {
    const std::string name = "W" + std::to_string(l);
    py::array w = W[l - 1].cast<py::array>();
    check_array(w, name.c_str(), dt, {m.n[l - 1], -1}, false);
    m.n[l] = w.shape(1);
    m.W[l] = in_ptr<T>(w);
    if (!U[l - 1].is_none()) {
      const std::string un = "U" + std::to_string(l);
      py::array u = U[l - 1].cast<py::array>();
      check_array(u, un.c_str(), dt, {m.n[l], m.n[l - 1]}, false);
      m.U[l] = in_ptr<T>(u);
    }
  }
  for (int l = 0; l <= L; ++l) {
    const std::string name = "b" + std::to_string(l);
    py::array bl = b[l].cast<py::array>();
    check_array(bl, name.c_str(), dt, {m.n[l]}, false);
    m.b[l] = in_ptr<T>(bl);
  }
  auto code = [](const py::object& o, const char* what, int most) {
    const int c = o.cast<int>();
    if (c < 0 || c > most) throw py::value_error(std::string(what) + ": unknown code " + std::to_string(c));
    return c;
  };
  m.activation = static_cast<Activation>(code(kw["activation"], "activation", 3));
  m.noise_pre = static_cast<T>(kw["noise_pre"].cast<double>());
  m.noise_post = static_cast<T>(kw["noise_post"].cast<double>());
  m.noiseless_h1 = kw["noiseless_h1"].cast<bool>();
  int64_t next = 0;
  for (const auto& t : kw["segments"].cast<std::vector<py::tuple>>()) {
    VisibleSegment s;
    s.offset = t[0].cast<int64_t>();
    s.size = t[1].cast<int64_t>();
    s.reconstruction = static_cast<Reconstruction>(code(t[2], "reconstruction", 2));
    s.sigma = t[3].cast<double>();
    s.corruption = static_cast<Corruption>(code(t[4], "corruption", 4));
    if (!(s.sigma > 0)) throw py::value_error("segments: sigma must be positive");
    s.corruption_param = t[5].cast<double>();
    s.weight = t[6].cast<double>();
    if (s.offset != next || s.size < 1)
      throw py::value_error("segments: expected consecutive, non-empty runs of units");
    next += s.size;
    m.segments.push_back(s);
  }
  if (next != D) throw py::value_error("segments: they must cover the visible layer exactly");
  return m;
}

template <class T>
std::vector<T*> writable_list(const py::kwargs& kw, const char* key, const char* prefix,
                              const std::vector<std::vector<py::ssize_t>>& shapes, bool allow_none,
                              std::vector<py::array>& keep) {
  const auto items = kw[key].cast<std::vector<py::object>>();
  if (items.size() != shapes.size())
    throw py::value_error(std::string(key) + ": expected " + std::to_string(shapes.size()) + " arrays");
  std::vector<T*> out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].is_none()) {
      if (!allow_none) throw py::value_error(std::string(key) + ": unexpected None");
      out.push_back(nullptr);
      continue;
    }
    py::array a = items[i].cast<py::array>();
    const std::string name = prefix + std::to_string(i);
    check_array(a, name.c_str(), py::dtype::of<T>(), shapes[i], true);
    keep.push_back(a);
    out.push_back(out_ptr<T>(a));
  }
  return out;
}

template <class T>
void gsn_chain_t(py::array x, const py::kwargs& kw) {
  const auto dt = py::dtype::of<T>();
  check_array(x, "x", dt, {-1, -1}, true);
  const py::ssize_t B = x.shape(0), D = x.shape(1);
  const GsnModel<T> m = gsn_model<T>(kw, D);
  std::vector<std::vector<py::ssize_t>> hshapes;
  for (int l = 1; l <= m.L; ++l) hshapes.push_back({B, m.n[l]});
  std::vector<py::array> keep;
  std::vector<T*> hidden = writable_list<T>(kw, "hidden", "hidden", hshapes, false, keep);
  const ChainCall<T> c = chain_call<T>(kw, B, D);
  T* mean_sum = opt_out<T>(kw, "mean_sum", {B, D});
  T* px = out_ptr<T>(x);
  py::gil_scoped_release nogil;
  gsn_chain<T>(m, c.args, px, hidden.data(), c.records, c.means, mean_sum);
}

template <class T>
double gsn_walkback_t(py::array x, const py::kwargs& kw) {
  check_array(x, "x", py::dtype::of<T>(), {-1, -1}, false);
  const py::ssize_t B = x.shape(0), D = x.shape(1);
  const GsnModel<T> m = gsn_model<T>(kw, D);
  WalkbackArgs a;
  a.batch = B;
  a.walkbacks = kw["walkbacks"].cast<int64_t>();
  a.seed = kw["seed"].cast<uint64_t>();
  a.first_chain = kw["first_chain"].cast<uint32_t>();
  a.last_only = kw["last_only"].cast<bool>();
  if (a.walkbacks < 1) throw py::value_error("walkbacks must be >= 1");
  bool per_chain = false;
  const uint8_t* clamp = clamp_arg(kw, 1, D, &per_chain);
  if (per_chain) throw py::value_error("clamp: training takes one (D,) mask");
  GsnGrads<T> g;
  std::vector<py::array> keep;
  const bool want = kw.contains("gW") && !kw["gW"].is_none();
  if (want) {
    std::vector<std::vector<py::ssize_t>> ws, us, bs;
    for (int l = 1; l <= m.L; ++l) {
      ws.push_back({m.n[l - 1], m.n[l]});
      us.push_back({m.n[l], m.n[l - 1]});
    }
    for (int l = 0; l <= m.L; ++l) bs.push_back({m.n[l]});
    g.W = writable_list<T>(kw, "gW", "gW", ws, false, keep);
    g.U = writable_list<T>(kw, "gU", "gU", us, true, keep);
    g.b = writable_list<T>(kw, "gb", "gb", bs, false, keep);
    g.W.insert(g.W.begin(), nullptr);
    g.U.insert(g.U.begin(), nullptr);
    for (int l = 1; l <= m.L; ++l)
      if ((m.U[l] != nullptr) != (g.U[l] != nullptr))
        throw py::value_error("gU: give a gradient exactly for each untied decoder");
  }
  const T* px = in_ptr<T>(x);
  py::gil_scoped_release nogil;
  return gsn_walkback<T>(m, a, px, clamp, want ? &g : nullptr);
}

bool is_f64(const py::array& x) { return same_dtype(x, py::dtype::of<double>()); }

}  // namespace

void bind_gsn(py::module_& mod) {
  mod.def("gsn_chain", [](py::array x, py::kwargs kw) {
    is_f64(x) ? gsn_chain_t<double>(x, kw) : gsn_chain_t<float>(x, kw);
  });
  mod.def("gsn_walkback", [](py::array x, py::kwargs kw) {
    return is_f64(x) ? gsn_walkback_t<double>(x, kw) : gsn_walkback_t<float>(x, kw);
  });
}

}  // namespace wb::bind
