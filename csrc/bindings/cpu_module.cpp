// The CPU extension: argument checks and array conversion around the C++ core, no maths.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <optional>

#include "bindings/array_checks.h"
#include "walkback/blas.h"
#include "walkback/corrupt.h"
#include "walkback/dae_chain.h"
#include "walkback/parallel_gemm.h"
#include "walkback/random_ops.h"
#include "walkback/thread_pool.h"

namespace py = pybind11;
using namespace wb::bind;

namespace {

void fill_random(bool normal, uint64_t seed, uint32_t step, uint32_t first_chain,
                 uint32_t stream, py::array out) {
  check_array(out, "out", py::dtype::of<float>(), {-1, -1}, true);
  float* p = out_ptr<float>(out);
  const int64_t chains = out.shape(0), units = out.shape(1);
  py::gil_scoped_release nogil;
  if (normal)
    wb::normal_array(seed, step, first_chain, stream, chains, units, p);
  else
    wb::uniform_array(seed, step, first_chain, stream, chains, units, p);
}

template <class T>
void corrupt_t(py::array x, py::array out, int kind, double param, uint64_t seed, uint32_t step,
               uint32_t first_chain) {
  check_array(x, "x", py::dtype::of<T>(), {-1, -1}, false);
  check_array(out, "out", py::dtype::of<T>(), {x.shape(0), x.shape(1)}, true);
  const T* px = in_ptr<T>(x);
  T* po = out_ptr<T>(out);
  py::gil_scoped_release nogil;
  wb::corrupt_batch<T>(static_cast<wb::Corruption>(kind), static_cast<T>(param), px, po,
                       x.shape(0), x.shape(1), seed, step, first_chain);
}

void corrupt(py::array x, py::array out, int kind, double param, uint64_t seed, uint32_t step,
             uint32_t first_chain) {
  if (x.dtype().is(py::dtype::of<double>()))
    corrupt_t<double>(x, out, kind, param, seed, step, first_chain);
  else
    corrupt_t<float>(x, out, kind, param, seed, step, first_chain);
}

template <class T>
void dae_chain_t(py::array x, py::array W, py::array b1, py::array b0, std::optional<py::array> U,
                 int activation, int reconstruction, double sigma, int corruption,
                 double corruption_param, uint64_t seed, uint32_t first_step,
                 uint32_t first_chain, int64_t steps, int64_t burn_in, int64_t every,
                 std::optional<py::array> clamp, std::optional<py::array> records,
                 std::optional<py::array> means, bool record_means) {
  const auto dt = py::dtype::of<T>();
  check_array(x, "x", dt, {-1, -1}, true);
  const py::ssize_t B = x.shape(0), D = x.shape(1);
  check_array(W, "W1", dt, {D, -1}, false);
  const py::ssize_t H = W.shape(1);
  check_array(b1, "b1", dt, {H}, false);
  check_array(b0, "b0", dt, {D}, false);
  if (U) check_array(*U, "U1", dt, {H, D}, false);
  if (steps < 0 || burn_in < 0 || every < 0)
    throw py::value_error("steps, burn_in and every must be >= 0");
  wb::ChainArgs a;
  a.chains = B;
  a.seed = seed;
  a.first_step = first_step;
  a.first_chain = first_chain;
  a.steps = steps;
  a.burn_in = burn_in;
  a.every = every;
  a.record_means = record_means;
  if (clamp) {
    if (clamp->ndim() == 1) {
      check_array(*clamp, "clamp", py::dtype::of<uint8_t>(), {D}, false);
    } else {
      check_array(*clamp, "clamp", py::dtype::of<uint8_t>(), {B, D}, false);
      a.clamp_per_chain = true;
    }
    a.clamp = in_ptr<uint8_t>(*clamp);
  }
  T* rec = nullptr;
  if (every > 0) {
    if (!records) throw py::value_error("records: required when every > 0");
    check_array(*records, "records", dt, {steps / every, B, D}, true);
    rec = out_ptr<T>(*records);
  }
  T* mp = nullptr;
  if (means) {
    check_array(*means, "means", dt, {B, D}, true);
    mp = out_ptr<T>(*means);
  }
  wb::DaeModel<T> m;
  m.W = in_ptr<T>(W);
  m.b1 = in_ptr<T>(b1);
  m.b0 = in_ptr<T>(b0);
  m.U = U ? in_ptr<T>(*U) : nullptr;
  m.D = D;
  m.H = H;
  m.activation = static_cast<wb::Activation>(activation);
  m.reconstruction = static_cast<wb::Reconstruction>(reconstruction);
  m.sigma = static_cast<T>(sigma);
  m.corruption = static_cast<wb::Corruption>(corruption);
  m.corruption_param = static_cast<T>(corruption_param);
  T* px = out_ptr<T>(x);
  py::gil_scoped_release nogil;
  wb::dae_chain<T>(m, a, px, rec, mp);
}

}  // namespace

PYBIND11_MODULE(_walkback_cpu, mod) {
  mod.doc() = "walkback's CPU kernels (internal: use walkback.ops and the models)";
  mod.def("uniform", [](uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                        py::array out) { fill_random(false, seed, step, first_chain, stream, out); });
  mod.def("normal", [](uint64_t seed, uint32_t step, uint32_t first_chain, uint32_t stream,
                       py::array out) { fill_random(true, seed, step, first_chain, stream, out); });
  mod.def("corrupt", &corrupt);
  mod.def("philox4x32_10", [](uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0,
                              uint32_t k1) {
    const wb::Philox4 r = wb::philox4x32_10(c0, c1, c2, c3, k0, k1);
    return py::make_tuple(r.v[0], r.v[1], r.v[2], r.v[3]);
  });
  mod.def("dae_chain", [](py::array x, py::kwargs kw) {
    auto get = [&](const char* k) { return kw[k]; };
    auto opt = [&](const char* k) -> std::optional<py::array> {
      if (!kw.contains(k) || kw[k].is_none()) return std::nullopt;
      return kw[k].cast<py::array>();
    };
    auto args = std::make_tuple(
        get("W1").cast<py::array>(), get("b1").cast<py::array>(), get("b0").cast<py::array>(),
        opt("U1"), get("activation").cast<int>(), get("reconstruction").cast<int>(),
        get("sigma").cast<double>(), get("corruption").cast<int>(),
        get("corruption_param").cast<double>(), get("seed").cast<uint64_t>(),
        get("first_step").cast<uint32_t>(), get("first_chain").cast<uint32_t>(),
        get("steps").cast<int64_t>(), get("burn_in").cast<int64_t>(),
        get("every").cast<int64_t>(), opt("clamp"), opt("records"), opt("means"),
        get("record_means").cast<bool>());
    auto call = [&](auto fn) {
      std::apply([&](auto&&... r) { fn(x, r...); }, args);
    };
    if (x.dtype().is(py::dtype::of<double>()))
      call(dae_chain_t<double>);
    else
      call(dae_chain_t<float>);
  });
  // C = A @ B (or A @ B^T) through walkback's parallel GEMM path, nothing fused: the benchmarks'
  // roofline.
  mod.def("gemm", [](py::array a, py::array b, py::array c, bool trans_b) {
    const auto dt = py::dtype::of<float>();
    check_array(a, "a", dt, {-1, -1}, false);
    const py::ssize_t k = a.shape(1);
    check_array(b, "b", dt, trans_b ? std::vector<py::ssize_t>{-1, k} : std::vector<py::ssize_t>{k, -1}, false);
    const py::ssize_t n = trans_b ? b.shape(0) : b.shape(1);
    check_array(c, "c", dt, {a.shape(0), n}, true);
    const float* pa = in_ptr<float>(a);
    const float* pb = in_ptr<float>(b);
    float* pc = out_ptr<float>(c);
    const int64_t m = a.shape(0), ldb = b.shape(1);
    py::gil_scoped_release nogil;
    wb::gemm_columns<float>(trans_b, m, n, k, pa, k, pb, ldb, pc, n, 16, [](int64_t, int64_t) {});
  });
  mod.def("set_num_threads", &wb::blas::set_num_threads);
  mod.def("get_num_threads", &wb::num_threads);
  mod.def("blas_info", &wb::blas::describe);
}
