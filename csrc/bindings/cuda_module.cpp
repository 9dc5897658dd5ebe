// The CUDA extension: raw device pointers (read from CuPy arrays on the Python side, in
// walkback/_gpu.py) and CuPy's current stream in, drivers of cuda/ called, no maths here.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "cuda/corrupt.h"
#include "cuda/cublas_runtime.h"
#include "cuda/dae.h"

namespace py = pybind11;

namespace {

template <class V>
V get(const py::dict& d, const char* key) {
  if (!d.contains(key)) throw py::key_error(std::string("internal: missing ") + key);
  return d[key].cast<V>();
}

template <class T>
T* ptr(uintptr_t p) {
  return reinterpret_cast<T*>(p);
}

cudaStream_t as_stream(uintptr_t s) { return reinterpret_cast<cudaStream_t>(s); }

template <class T>
wb::DaeModel<T> dae_model(const py::dict& m) {
  wb::DaeModel<T> model;
  model.W = ptr<const T>(get<uintptr_t>(m, "W1"));
  model.b1 = ptr<const T>(get<uintptr_t>(m, "b1"));
  model.b0 = ptr<const T>(get<uintptr_t>(m, "b0"));
  model.U = ptr<const T>(get<uintptr_t>(m, "U1"));  // 0: tied
  model.D = get<int64_t>(m, "D");
  model.H = get<int64_t>(m, "H");
  model.activation = static_cast<wb::Activation>(get<int>(m, "activation"));
  model.reconstruction = static_cast<wb::Reconstruction>(get<int>(m, "reconstruction"));
  model.sigma = static_cast<T>(get<double>(m, "sigma"));
  model.corruption = static_cast<wb::Corruption>(get<int>(m, "corruption"));
  model.corruption_param = static_cast<T>(get<double>(m, "corruption_param"));
  if (model.D <= 0 || model.H <= 0) throw py::value_error("internal: D and H must be positive");
  if (model.reconstruction == wb::Reconstruction::Categorical)
    throw py::value_error("a DAE takes Bernoulli or Gaussian reconstruction");
  return model;
}

// How many row branches a large batch runs as (0: the backend chooses; 1 or 2).
int get_branches(const py::dict& a) {
  const int64_t b = get<int64_t>(a, "branches");
  if (b < 0 || b > 2)
    throw py::value_error("branches must be 0 (automatic), 1 or 2, not " + std::to_string(b));
  return int(b);
}

template <class T>
uint32_t chain_t(const py::dict& m, const py::dict& a) {
  const wb::DaeModel<T> model = dae_model<T>(m);
  wb::ChainArgs args;
  args.chains = get<int64_t>(a, "chains");
  args.seed = get<uint64_t>(a, "seed");
  args.first_step = get<uint32_t>(a, "first_step");
  args.first_chain = get<uint32_t>(a, "first_chain");
  args.steps = get<int64_t>(a, "steps");
  args.burn_in = get<int64_t>(a, "burn_in");
  args.every = get<int64_t>(a, "every");
  args.clamp = ptr<const uint8_t>(get<uintptr_t>(a, "clamp"));
  args.clamp_per_chain = get<bool>(a, "clamp_per_chain");
  args.record_means = get<bool>(a, "record_means");
  T* x = ptr<T>(get<uintptr_t>(a, "x"));
  T* records = ptr<T>(get<uintptr_t>(a, "records"));
  T* means = ptr<T>(get<uintptr_t>(a, "means"));
  wb::cuda::ChainLaunch how;
  how.steps_per_graph = get<int64_t>(a, "steps_per_graph");
  how.branches = get_branches(a);
  how.w_layout = get<int>(a, "w_layout");  // both checked by the driver (a ValueError here)
  how.check = get<int>(a, "check");
  const cudaStream_t s = as_stream(get<uintptr_t>(a, "stream"));
  if (args.chains < 0 || args.chains > 65535)
    throw py::value_error("the GPU chain runs at most 65535 chains per call");
  py::gil_scoped_release nogil;
  return wb::cuda::dae_chain<T>(model, args, x, records, means, how, s);
}

template <class T>
double walkback_t(const py::dict& m, const py::dict& a, const py::object& g) {
  const wb::DaeModel<T> model = dae_model<T>(m);
  wb::WalkbackArgs args;
  args.batch = get<int64_t>(a, "batch");
  args.walkbacks = get<int64_t>(a, "walkbacks");
  args.seed = get<uint64_t>(a, "seed");
  args.first_chain = get<uint32_t>(a, "first_chain");
  args.last_only = get<bool>(a, "last_only");
  if (args.batch < 0 || args.batch > 65535)
    throw py::value_error("GPU walk-back training takes at most 65535 rows per call");
  const T* x = ptr<const T>(get<uintptr_t>(a, "x"));
  const cudaStream_t s = as_stream(get<uintptr_t>(a, "stream"));
  wb::DaeGrads<T> grads;
  const bool with_grads = !g.is_none();
  if (with_grads) {
    const py::dict gd = g.cast<py::dict>();
    grads.W = ptr<T>(get<uintptr_t>(gd, "W1"));
    grads.b1 = ptr<T>(get<uintptr_t>(gd, "b1"));
    grads.b0 = ptr<T>(get<uintptr_t>(gd, "b0"));
    grads.U = ptr<T>(get<uintptr_t>(gd, "U1"));
  }
  double* loss_out = ptr<double>(get<uintptr_t>(a, "loss_out"));  // read while holding the GIL
  const int branches = get_branches(a);
  uint32_t bad = 0;
  double loss;
  {
    py::gil_scoped_release nogil;
    loss = wb::cuda::dae_walkback<T>(model, args, x, with_grads ? &grads : nullptr, &bad,
                                     loss_out, branches, s);
  }
  if (bad & wb::cuda::kNotFinite) throw py::value_error("x: contains NaN or infinite values");
  if (bad & wb::cuda::kOutsideUnitInterval)
    throw py::value_error(
        "x: a Bernoulli model needs data in [0, 1] (binary, or grey levels used as Bernoulli "
        "means)");
  return loss;
}

}  // namespace

PYBIND11_MODULE(_walkback_cuda, mod) {
  mod.doc() = "walkback's CUDA kernels (internal: use walkback.ops and the models with CuPy)";
  mod.def("device_count", &wb::cuda::device_count);
  mod.def("load_cublas", [](const std::vector<std::string>& paths) {
    return wb::cuda::load_cublas(paths).origin;
  });
  mod.def("corrupt", [](uintptr_t x, uintptr_t out, int64_t chains, int64_t units,
                        int dtype_size, int kind, double param, uint64_t seed, uint32_t step,
                        uint32_t first_chain, uintptr_t stream) {
    if (dtype_size != 4 && dtype_size != 8)
      throw py::value_error("corrupt: dtype_size must be 4 or 8");
    if (chains < 0 || units < 0) throw py::value_error("corrupt: negative extent");
    wb::cuda::corrupt(reinterpret_cast<const void*>(x), reinterpret_cast<void*>(out), chains,
                      units, dtype_size, static_cast<wb::Corruption>(kind), param, seed, step,
                      first_chain, stream);
  });
  mod.def("check_values", [](uintptr_t x, int64_t n, int dtype_size, bool binary,
                             uintptr_t stream) {
    py::gil_scoped_release nogil;
    return wb::cuda::check_values(reinterpret_cast<const void*>(x), n, dtype_size, binary, stream);
  });
  mod.def("random", [](bool normal, uint64_t seed, uint32_t step, uint32_t first_chain,
                       uint32_t stream_id, int64_t chains, int64_t units, uintptr_t out,
                       uintptr_t stream) {
    wb::cuda::random_array(normal, seed, step, first_chain, stream_id, chains, units,
                           reinterpret_cast<float*>(out), stream);
  });
  mod.def("dae_chain", [](const py::dict& m, const py::dict& a) {
    return get<int>(m, "dtype_size") == 8 ? chain_t<double>(m, a) : chain_t<float>(m, a);
  });
  mod.def("dae_walkback", [](const py::dict& m, const py::dict& a, const py::object& grads) {
    return get<int>(m, "dtype_size") == 8 ? walkback_t<double>(m, a, grads)
                                          : walkback_t<float>(m, a, grads);
  });
  // One call for all the arrays of a model: (dtype_size, p, g, s1, s2, n) per array.
  mod.def("optimizer_update", [](int kind,
                                 const std::vector<std::tuple<int, uintptr_t, uintptr_t,
                                                              uintptr_t, uintptr_t, int64_t>>& arrays,
                                 const py::dict& h, uintptr_t stream) {
    if (kind < 0 || kind > 2) throw py::value_error("optimizer_update: kind must be 0, 1 or 2");
    wb::cuda::OptimizerHyper hy;
    auto opt = [&](const char* k, double& v) {
      if (h.contains(k)) v = h[k].cast<double>();
    };
    opt("lr", hy.lr);
    opt("momentum", hy.momentum);
    opt("weight_decay", hy.weight_decay);
    opt("beta1", hy.beta1);
    opt("beta2", hy.beta2);
    opt("eps", hy.eps);
    opt("bc1", hy.bc1);
    opt("bc2", hy.bc2);
    opt("rho", hy.rho);
    // The arrays of each dtype in one launch (cuda/dae.h).
    std::vector<wb::cuda::OptimizerArray<float>> f32;
    std::vector<wb::cuda::OptimizerArray<double>> f64;
    for (const auto& [dtype_size, p, g, s1, s2, n] : arrays) {
      if (dtype_size == 8)
        f64.push_back({ptr<double>(p), ptr<const double>(g), ptr<double>(s1), ptr<double>(s2), n});
      else
        f32.push_back({ptr<float>(p), ptr<const float>(g), ptr<float>(s1), ptr<float>(s2), n});
    }
    wb::cuda::optimizer_update<float>(kind, f32.data(), int(f32.size()), hy, as_stream(stream));
    wb::cuda::optimizer_update<double>(kind, f64.data(), int(f64.size()), hy, as_stream(stream));
  });
  mod.def("gemm_logsumexp", [](int dtype_size, uintptr_t a, int64_t M, uintptr_t b, int64_t N,
                               int64_t D, double scale, uintptr_t col_term, uintptr_t row_term,
                               uintptr_t out, uintptr_t stream) {
    py::gil_scoped_release nogil;
    if (dtype_size == 8)
      wb::cuda::gemm_logsumexp<double>(ptr<const double>(a), M, ptr<const double>(b), N, D,
                                       scale, ptr<const double>(col_term),
                                       ptr<const double>(row_term), ptr<double>(out),
                                       as_stream(stream));
    else
      wb::cuda::gemm_logsumexp<float>(ptr<const float>(a), M, ptr<const float>(b), N, D,
                                      static_cast<float>(scale), ptr<const float>(col_term),
                                      ptr<const double>(row_term), ptr<double>(out),
                                      as_stream(stream));
  });
}
