#include "bindings/shaped_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <limits>
#include <optional>
#include <string>

#include "bindings/array_checks.h"
#include "walkback/shaped_chain.h"

namespace py = pybind11;

namespace wb::bind {
namespace {

bool is_f64(const py::array& a) { return same_dtype(a, py::dtype::of<double>()); }

// A network from [W0, b0, ..., W_head, b_head] (the head last), shapes chained.
template <class T>
Net<T> net_from(const py::list& p, int act, int64_t in, const char* name) {
  if (p.size() < 4 || p.size() % 2)
    throw py::value_error(std::string(name) + ": expected [W, b] pairs, a hidden layer and a head");
  Net<T> n;
  n.act = static_cast<Activation>(act);
  const auto dt = py::dtype::of<T>();
  const size_t layers = p.size() / 2;
  for (size_t l = 0; l < layers; ++l) {
    py::array W = p[2 * l].cast<py::array>(), b = p[2 * l + 1].cast<py::array>();
    const std::string wn = std::string(name) + " W" + std::to_string(l);
    check_array(W, wn.c_str(), dt, {in, -1}, false);
    const int64_t out = W.shape(1);
    check_array(b, (std::string(name) + " b" + std::to_string(l)).c_str(), dt, {out}, false);
    DenseLayer<T> layer{in, out, in_ptr<T>(W), in_ptr<T>(b)};
    if (l + 1 < layers)
      n.body.push_back(layer);
    else
      n.head = layer;
    in = out;
  }
  return n;
}

template <class T>
std::optional<NetGrads<T>> grads_from(const std::optional<py::list>& g, const Net<T>& n,
                                      const char* name) {
  if (!g) return std::nullopt;
  if (g->size() != 2 * (n.body.size() + 1))
    throw py::value_error(std::string(name) + ": one gradient array per parameter");
  NetGrads<T> out;
  const auto dt = py::dtype::of<T>();
  for (size_t l = 0; l <= n.body.size(); ++l) {
    const DenseLayer<T>& layer = l < n.body.size() ? n.body[l] : n.head;
    py::array W = (*g)[2 * l].cast<py::array>(), b = (*g)[2 * l + 1].cast<py::array>();
    check_array(W, name, dt, {layer.in, layer.out}, true);
    check_array(b, name, dt, {layer.out}, true);
    out.W.push_back(out_ptr<T>(W));
    out.b.push_back(out_ptr<T>(b));
  }
  return out;
}

template <class T>
ShapedModel<T> model_from(const py::dict& c, const py::list& enc, const py::list& dec,
                          const std::optional<py::list>& guide) {
  ShapedModel<T> m;
  m.D = c["visible"].cast<int64_t>();
  m.latent = c["latent"].cast<int64_t>();
  m.kld = static_cast<T>(c["kld"].cast<double>());
  m.decay = static_cast<T>(c["decay"].cast<double>());
  m.shaping = static_cast<T>(c["shaping"].cast<double>());
  m.walkback = c["walkback"].cast<bool>();
  const int act = c["activation"].cast<int>();
  m.enc = net_from<T>(enc, act, m.D, "enc");
  m.dec = net_from<T>(dec, act, m.latent, "dec");
  if (m.enc.head.out != 2 * m.latent) throw py::value_error("enc: the head must give 2 * latent");
  if (m.dec.head.out != m.D) throw py::value_error("dec: the head must give the visible units");
  if (guide) {
    m.guide = net_from<T>(*guide, act, m.D, "guide");
    if (m.guide.head.out != 1) throw py::value_error("guide: the head must give one output");
  }
  if (m.shaping > T(0) && !guide) throw py::value_error("shaping needs the guide's parameters");
  return m;
}

// (NLL, KL, shaping, the guide's loss: NaN unless gguide asked for the guide's step too).
template <class T>
std::array<double, 4> generator_t(py::array x, py::list enc, py::list dec,
                                  std::optional<py::list> guide, py::dict c,
                                  std::optional<py::list> genc, std::optional<py::list> gdec,
                                  std::optional<py::array> states,
                                  std::optional<py::list> gguide) {
  const ShapedModel<T> m = model_from<T>(c, enc, dec, guide);
  check_array(x, "x", py::dtype::of<T>(), {-1, m.D}, false);
  ShapedArgs a;
  a.B = x.shape(0);
  a.steps = c["steps"].cast<int64_t>();
  a.seed = c["seed"].cast<uint64_t>();
  a.first_chain = c["first_chain"].cast<uint32_t>();
  auto ge = grads_from<T>(genc, m.enc, "enc grads");
  auto gd = grads_from<T>(gdec, m.dec, "dec grads");
  if (gguide && !guide) throw py::value_error("the guide's gradients need its parameters");
  auto gg = grads_from<T>(gguide, m.guide, "guide grads");
  T* ps = nullptr;
  if (states) {
    check_array(*states, "states", py::dtype::of<T>(), {a.steps, a.B, m.D}, true);
    ps = out_ptr<T>(*states);
  }
  const T* px = in_ptr<T>(x);
  py::gil_scoped_release nogil;
  double guide_loss = std::numeric_limits<double>::quiet_NaN();
  const auto p = shaped_generator<T>(m, a, px, ge ? &*ge : nullptr, gd ? &*gd : nullptr, ps,
                                     gg ? &*gg : nullptr, &guide_loss);
  return {p[0], p[1], p[2], guide_loss};
}

template <class T>
double guide_t(py::array x, py::array states, py::list enc, py::list dec, py::list guide,
               py::dict c, std::optional<py::list> gguide) {
  const ShapedModel<T> m = model_from<T>(c, enc, dec, guide);
  check_array(x, "x", py::dtype::of<T>(), {-1, m.D}, false);
  check_array(states, "states", py::dtype::of<T>(), {-1, m.D}, false);
  auto g = grads_from<T>(gguide, m.guide, "guide grads");
  const T* px = in_ptr<T>(x);
  const T* ps = in_ptr<T>(states);
  const int64_t B = x.shape(0), M = states.shape(0);
  py::gil_scoped_release nogil;
  return shaped_guide<T>(m, B, px, M, ps, g ? &*g : nullptr);
}

template <class T>
void sample_t(py::list enc, py::list dec, py::dict c, int64_t n, int64_t steps, int64_t every,
              uint64_t seed, uint32_t first_chain, py::array out) {
  const ShapedModel<T> m = model_from<T>(c, enc, dec, std::nullopt);
  if (n < 1 || steps < 1 || every < 0 || every > steps)
    throw std::invalid_argument("shaped_sample: expected n >= 1, steps >= 1, 0 <= every <= steps");
  const int64_t records = every > 0 ? steps / every : 1;
  check_array(out, "out", py::dtype::of<T>(), {records, n, m.D}, true);
  T* po = out_ptr<T>(out);
  py::gil_scoped_release nogil;
  shaped_sample<T>(m, n, steps, every, seed, first_chain, po);
}

}  // namespace

void bind_shaped(py::module_& mod) {
  mod.def("shaped_generator", [](py::array x, py::list enc, py::list dec,
                                 std::optional<py::list> guide, py::dict c,
                                 std::optional<py::list> genc, std::optional<py::list> gdec,
                                 std::optional<py::array> states, std::optional<py::list> gguide) {
    return is_f64(x) ? generator_t<double>(x, enc, dec, guide, c, genc, gdec, states, gguide)
                     : generator_t<float>(x, enc, dec, guide, c, genc, gdec, states, gguide);
  });
  mod.def("shaped_guide", [](py::array x, py::array states, py::list enc, py::list dec,
                             py::list guide, py::dict c, std::optional<py::list> g) {
    return is_f64(x) ? guide_t<double>(x, states, enc, dec, guide, c, g)
                     : guide_t<float>(x, states, enc, dec, guide, c, g);
  });
  mod.def("shaped_sample", [](py::list enc, py::list dec, py::dict c, int64_t n, int64_t steps,
                              int64_t every, uint64_t seed, uint32_t first_chain, py::array out) {
    is_f64(out) ? sample_t<double>(enc, dec, c, n, steps, every, seed, first_chain, out)
                : sample_t<float>(enc, dec, c, n, steps, every, seed, first_chain, out);
  });
}

}  // namespace wb::bind
