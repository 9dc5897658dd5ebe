// The CPU extension: argument checks and array conversion around the C++ core, no maths.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <optional>
#include <vector>

#include "bindings/array_checks.h"
#include "bindings/chain_args.h"
#include "bindings/diffusion_bindings.h"
#include "bindings/sequence_bindings.h"
#include "bindings/shaped_bindings.h"
#include "bindings/eval_bindings.h"
#include "bindings/gsn_bindings.h"
#include "walkback/blas.h"
#include "walkback/corrupt.h"
#include "walkback/dae_chain.h"
#include "walkback/dae_train.h"
#include "walkback/optimizers.h"
#include "walkback/parallel_gemm.h"
#include "walkback/workspace.h"
#include "walkback/philox_simd.h"
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
  if (same_dtype(x, py::dtype::of<double>()))
    corrupt_t<double>(x, out, kind, param, seed, step, first_chain);
  else
    corrupt_t<float>(x, out, kind, param, seed, step, first_chain);
}

// The DAE's parameters and configuration from keyword arguments (W1, b1, b0, U1 or None,
// activation, reconstruction, sigma, corruption, corruption_param), checked against D.
template <class T>
wb::DaeModel<T> dae_model(const py::kwargs& kw, py::ssize_t D) {
  const auto dt = py::dtype::of<T>();
  py::array W = kw["W1"].cast<py::array>();
  check_array(W, "W1", dt, {D, -1}, false);
  const py::ssize_t H = W.shape(1);
  py::array b1 = kw["b1"].cast<py::array>(), b0 = kw["b0"].cast<py::array>();
  check_array(b1, "b1", dt, {H}, false);
  check_array(b0, "b0", dt, {D}, false);
  wb::DaeModel<T> m;
  if (kw.contains("U1") && !kw["U1"].is_none()) {
    py::array U = kw["U1"].cast<py::array>();
    check_array(U, "U1", dt, {H, D}, false);
    m.U = in_ptr<T>(U);
  }
  m.W = in_ptr<T>(W);
  m.b1 = in_ptr<T>(b1);
  m.b0 = in_ptr<T>(b0);
  m.D = D;
  m.H = H;
  m.activation = static_cast<wb::Activation>(kw["activation"].cast<int>());
  m.reconstruction = static_cast<wb::Reconstruction>(kw["reconstruction"].cast<int>());
  m.sigma = static_cast<T>(kw["sigma"].cast<double>());
  m.corruption = static_cast<wb::Corruption>(kw["corruption"].cast<int>());
  m.corruption_param = static_cast<T>(kw["corruption_param"].cast<double>());
  return m;
}

template <class T>
void dae_chain_t(py::array x, const py::kwargs& kw) {
  const auto dt = py::dtype::of<T>();
  check_array(x, "x", dt, {-1, -1}, true);
  const py::ssize_t B = x.shape(0), D = x.shape(1);
  const wb::DaeModel<T> m = dae_model<T>(kw, D);
  const ChainCall<T> c = chain_call<T>(kw, B, D);
  T* px = out_ptr<T>(x);
  py::gil_scoped_release nogil;
  wb::dae_chain<T>(m, c.args, px, c.records, c.means);
}

// Returns the walk-back loss; fills gW1, gb1, gb0 (and gU1 when untied) when given.
template <class T>
double dae_walkback_t(py::array x, const py::kwargs& kw) {
  const auto dt = py::dtype::of<T>();
  check_array(x, "x", dt, {-1, -1}, false);
  const py::ssize_t B = x.shape(0), D = x.shape(1);
  const wb::DaeModel<T> m = dae_model<T>(kw, D);
  const py::ssize_t H = m.H;
  wb::WalkbackArgs a;
  a.batch = B;
  a.walkbacks = kw["walkbacks"].cast<int64_t>();
  a.seed = kw["seed"].cast<uint64_t>();
  a.first_chain = kw["first_chain"].cast<uint32_t>();
  a.last_only = kw["last_only"].cast<bool>();
  if (a.walkbacks < 1) throw py::value_error("walkbacks must be >= 1");
  wb::DaeGrads<T> g;
  auto gW = opt_array(kw, "gW1");
  if (gW) {
    auto gb1 = opt_array(kw, "gb1"), gb0 = opt_array(kw, "gb0"), gU = opt_array(kw, "gU1");
    if (!gb1 || !gb0) throw py::value_error("gb1, gb0: required with gW1");
    check_array(*gW, "gW1", dt, {D, H}, true);
    check_array(*gb1, "gb1", dt, {H}, true);
    check_array(*gb0, "gb0", dt, {D}, true);
    g.W = out_ptr<T>(*gW);
    g.b1 = out_ptr<T>(*gb1);
    g.b0 = out_ptr<T>(*gb0);
    if (m.U) {
      if (!gU) throw py::value_error("gU1: required for an untied model");
      check_array(*gU, "gU1", dt, {H, D}, true);
      g.U = out_ptr<T>(*gU);
    }
  }
  const T* px = in_ptr<T>(x);
  py::gil_scoped_release nogil;
  return wb::dae_walkback<T>(m, a, px, gW ? &g : nullptr);
}

template <class T>
// kind: 0 SGD (state: velocity), 1 Adam (two moments), 2 RMSprop (mean square).
void optimizer_t(int kind, py::array p, py::array g, py::array s1, std::optional<py::array> s2,
                 const py::dict& h, std::optional<py::array> backup) {
  const auto dt = py::dtype::of<T>();
  check_array(p, "param", dt, {p.size()}, true);
  check_array(g, "grad", dt, {p.size()}, false);
  check_array(s1, "state", dt, {p.size()}, true);
  const bool adam = kind == 1;
  if (kind < 0 || kind > 2) throw py::value_error("optimizer kind: expected 0, 1 or 2");
  if (adam) {
    if (!s2) throw py::value_error("adam: second state required");
    check_array(*s2, "state2", dt, {p.size()}, true);
  }
  T* pp = out_ptr<T>(p);
  const T* pg = in_ptr<T>(g);
  T* ps1 = out_ptr<T>(s1);
  T* ps2 = adam ? out_ptr<T>(*s2) : nullptr;
  T* pbk = nullptr;
  if (backup) {
    check_array(*backup, "backup", dt, {p.size()}, true);
    pbk = out_ptr<T>(*backup);
  }
  const int64_t n = p.size();
  const T lr = h["lr"].cast<T>(), wd = h["weight_decay"].cast<T>();
  const T gs = h.contains("grad_scale") ? h["grad_scale"].cast<T>() : T(1);
  if (adam) {
    const T b1 = h["beta1"].cast<T>(), b2 = h["beta2"].cast<T>(), eps = h["eps"].cast<T>();
    const T bc1 = h["bc1"].cast<T>(), bc2 = h["bc2"].cast<T>();
    py::gil_scoped_release nogil;
    wb::adam_update_array<T>(pp, pg, ps1, ps2, n, lr, b1, b2, eps, bc1, bc2, wd, gs, pbk);
  } else if (kind == 2) {
    const T rho = h["rho"].cast<T>(), eps = h["eps"].cast<T>();
    py::gil_scoped_release nogil;
    wb::rmsprop_update_array<T>(pp, pg, ps1, n, lr, rho, eps, wd, gs, pbk);
  } else {
    const T mom = h["momentum"].cast<T>();
    py::gil_scoped_release nogil;
    wb::sgd_update_array<T>(pp, pg, ps1, n, lr, mom, wd, gs, pbk);
  }
}

bool is_f64(const py::array& x) { return same_dtype(x, py::dtype::of<double>()); }

// C = A @ op(B) in float32, checked: A (m, k); B (k, n), or (n, k) when trans_b; C (m, n),
// writable. The benchmarks' and tests' raw products.
struct Product {
  int64_t m, n, k, ldb;
  const float* a;
  const float* b;
  float* c;
};
Product checked_product(py::array a, py::array b, py::array c, bool trans_b) {
  const auto dt = py::dtype::of<float>();
  check_array(a, "a", dt, {-1, -1}, false);
  const py::ssize_t k = a.shape(1);
  check_array(b, "b", dt, trans_b ? std::vector<py::ssize_t>{-1, k} : std::vector<py::ssize_t>{k, -1}, false);
  const py::ssize_t n = trans_b ? b.shape(0) : b.shape(1);
  check_array(c, "c", dt, {a.shape(0), n}, true);
  return {a.shape(0), n, k, b.shape(1), in_ptr<float>(a), in_ptr<float>(b), out_ptr<float>(c)};
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
  // Testing: `count` Philox blocks through one forced path (0 scalar, 1 AVX2, 2 AVX-512): from
  // block g0 of chain0, or (over_chains) block g0 of chains chain0 ...; None when this machine
  // lacks the path.
  mod.def("philox_blocks_path", [](int path, uint64_t seed, uint32_t g0, uint32_t chain0,
                                   int64_t count, bool over_chains, uint32_t step,
                                   uint32_t stream) -> py::object {
    if (count < 0) throw py::value_error("count must be >= 0");
    py::array_t<float> out(count * 4);
    if (!wb::philox_blocks_path(path, wb::stream_key(seed), g0, chain0, count, over_chains, step,
                                stream, out.mutable_data()))
      return py::none();
    return std::move(out);
  });
  // Testing: uniform_block_rows through one forced path: blocks g0 .. g0 + groups - 1 of
  // chains chain0 .. chain0 + rows - 1, as a (rows, ld) array (None when the path is absent).
  mod.def("uniform_block_rows_path", [](int path, uint64_t seed, uint32_t g0, int64_t groups,
                                        uint32_t chain0, int64_t rows, int64_t ld,
                                        uint32_t step, uint32_t stream) -> py::object {
    if (groups < 0 || rows < 0 || ld < 4 * groups)
      throw py::value_error("uniform_block_rows_path: need groups, rows >= 0, ld >= 4 groups");
    py::array_t<float> out({rows, ld});
    std::fill(out.mutable_data(), out.mutable_data() + rows * ld, -1.0f);  // unwritten: -1
    if (!wb::uniform_block_rows_path(path, wb::stream_key(seed), g0, groups, chain0, rows, ld,
                                     step, stream, out.mutable_data()))
      return py::none();
    return std::move(out);
  });
  mod.def("dae_chain", [](py::array x, py::kwargs kw) {
    is_f64(x) ? dae_chain_t<double>(x, kw) : dae_chain_t<float>(x, kw);
  });
  mod.def("dae_walkback", [](py::array x, py::kwargs kw) {
    return is_f64(x) ? dae_walkback_t<double>(x, kw) : dae_walkback_t<float>(x, kw);
  });
  // Flat (ravelled) parameter, gradient and state arrays; hyper-parameters in a dict; the
  // parameters before the update into `backup` when given.
  mod.def(
      "optimizer_update",
      [](int kind, py::array p, py::array g, py::array s1, std::optional<py::array> s2,
         py::dict h, std::optional<py::array> backup) {
        is_f64(p) ? optimizer_t<double>(kind, p, g, s1, s2, h, backup)
                  : optimizer_t<float>(kind, p, g, s1, s2, h, backup);
      },
      py::arg("kind"), py::arg("p"), py::arg("g"), py::arg("s1"), py::arg("s2"), py::arg("h"),
      py::arg("backup") = py::none());
  // The sum of squares of a flat array, in double: gradient-norm clipping.
  mod.def("sum_squares", [](py::array a) {
    const bool f64 = is_f64(a);
    check_array(a, "array", f64 ? py::dtype::of<double>() : py::dtype::of<float>(), {a.size()},
                false);
    const void* p = a.data();
    const int64_t n = a.size();
    py::gil_scoped_release nogil;
    return f64 ? wb::sum_squares<double>(static_cast<const double*>(p), n)
               : wb::sum_squares<float>(static_cast<const float*>(p), n);
  });
  // C = A @ B (or A @ B^T) through walkback's parallel GEMM path, nothing fused: the benchmarks'
  // roofline.
  mod.def("gemm", [](py::array a, py::array b, py::array c, bool trans_b) {
    const Product p = checked_product(a, b, c, trans_b);
    py::gil_scoped_release nogil;
    wb::gemm_columns<float>(trans_b, p.m, p.n, p.k, p.a, p.k, p.b, p.ldb, p.c, p.n, 16,
                            [](int64_t, int64_t) {});
  });
  // The same product through walkback's own packed GEMM (packed_gemm.h): B packed, then C in
  // column slices. For its tests against NumPy; raises where it is not available.
  mod.def("packed_gemm", [](py::array a, py::array b, py::array c, bool trans_b, bool accumulate) {
    const Product p = checked_product(a, b, c, trans_b);
    if (!wb::packed_gemm_supported())
      throw std::runtime_error(
          "packed_gemm: this processor has neither AVX-512 nor AVX2 (or it is switched off)");
    py::gil_scoped_release nogil;
    wb::KeptWorkspace<wb::PackedLayer> kept;  // as the chain keeps it: timings see no page faults
    wb::PackedWeights& w = kept->forward;
    w.pack(p.b, p.ldb, trans_b, p.k, p.n);
    wb::parallel_columns(p.n, wb::PackedWeights::kPanel, 64, 4, [&](int64_t j0, int64_t j1) {
      wb::packed_gemm(p.m, p.a, p.k, w, p.c, p.n, j0, j1, accumulate);
    });
  }, py::arg("a"), py::arg("b"), py::arg("c"), py::arg("trans_b") = false,
     py::arg("accumulate") = false);
  // C_i = A_i op(B) for each pair, B packed once: a batch's or a chain's products by the same
  // weights, packing counted as walkback's models count it (once per call). The benchmarks'
  // roofline of the packed path.
  mod.def("packed_gemm_many", [](std::vector<py::array> as, py::array b, std::vector<py::array> cs,
                                 bool trans_b) {
    if (as.empty() || as.size() != cs.size())
      throw std::invalid_argument("packed_gemm_many: as and cs must be non-empty lists of one length");
    std::vector<Product> ps;
    for (size_t i = 0; i < as.size(); ++i) ps.push_back(checked_product(as[i], b, cs[i], trans_b));
    if (!wb::packed_gemm_supported())
      throw std::runtime_error("packed_gemm_many: the packed GEMM is not available");
    py::gil_scoped_release nogil;
    wb::KeptWorkspace<wb::PackedLayer> kept;
    wb::PackedWeights& w = kept->forward;
    w.pack(ps[0].b, ps[0].ldb, trans_b, ps[0].k, ps[0].n);
    for (const Product& p : ps)
      wb::packed_gemm_columns(p.m, p.a, p.k, w, p.c, p.n,
                              [](int64_t, int64_t, int64_t, int64_t) {});
  }, py::arg("as"), py::arg("b"), py::arg("cs"), py::arg("trans_b") = false);
  // C = at^T op(B) through packed_gemm_tn (A given transposed, B packed): the weight
  // gradients' product. For its tests and the benchmarks' roofline.
  mod.def("packed_gemm_at", [](py::array at, py::array b, py::array c, bool trans_b,
                               bool accumulate) {
    const auto dt = py::dtype::of<float>();
    check_array(at, "at", dt, {-1, -1}, false);
    const py::ssize_t k = at.shape(0), m = at.shape(1);
    check_array(b, "b", dt, trans_b ? std::vector<py::ssize_t>{-1, k} : std::vector<py::ssize_t>{k, -1}, false);
    const py::ssize_t n = trans_b ? b.shape(0) : b.shape(1);
    check_array(c, "c", dt, {m, n}, true);
    if (!wb::packed_gemm_supported())
      throw std::runtime_error("packed_gemm_at: the packed GEMM is not available");
    const float* pa = in_ptr<float>(at);
    const float* pb = in_ptr<float>(b);
    float* pc = out_ptr<float>(c);
    const int64_t ldb = b.shape(1);
    py::gil_scoped_release nogil;
    wb::packed_gemm_tn(k, m, n, pa, m, pb, ldb, trans_b, pc, n, accumulate);
  }, py::arg("at"), py::arg("b"), py::arg("c"), py::arg("trans_b") = false,
     py::arg("accumulate") = false);
  // C = A[:, k0:k1] op(B)[k0:k1, :] through packed_gemm_k (op(B) packed whole), one thread. For
  // its tests.
  mod.def("packed_gemm_k", [](py::array a, py::array b, py::array c, int64_t k0, int64_t k1,
                              bool trans_b) {
    const Product p = checked_product(a, b, c, trans_b);
    if (!wb::packed_gemm_supported())
      throw std::runtime_error("packed_gemm_k: the packed GEMM is not available");
    py::gil_scoped_release nogil;
    wb::PackedWeights w;
    w.pack(p.b, p.ldb, trans_b, p.k, p.n);
    wb::packed_gemm_k(p.m, p.a + k0, p.k, w, k0, k1, p.c, p.n, 0, p.n, false);
  });
  // The product with packed_gemm's block callback, one thread, the whole width as one slice:
  // each callback copies its block of C into `seen` (so seen == C only if the blocks tile C and
  // each ran once C was final there); returns the blocks (r0, r1, c0, c1). For its tests.
  mod.def("packed_gemm_blocks", [](py::array a, py::array b, py::array c, py::array seen,
                                    bool trans_b) {
    const Product p = checked_product(a, b, c, trans_b);
    check_array(seen, "seen", py::dtype::of<float>(), {p.m, p.n}, true);
    if (!wb::packed_gemm_supported())
      throw std::runtime_error("packed_gemm_blocks: the packed GEMM is not available");
    float* out = static_cast<float*>(seen.mutable_data());
    std::vector<std::array<int64_t, 4>> blocks;
    {
      py::gil_scoped_release nogil;
      wb::PackedWeights w;
      w.pack(p.b, p.ldb, trans_b, p.k, p.n);
      auto copy = [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
        blocks.push_back({r0, r1, c0, c1});
        for (int64_t r = r0; r < r1; ++r)
          std::copy(p.c + r * p.n + c0, p.c + r * p.n + c1, out + r * p.n + c0);
      };
      const wb::BlockDone done = wb::BlockDone::of(copy);
      wb::packed_gemm(p.m, p.a, p.k, w, p.c, p.n, 0, p.n, false, &done);
    }
    return blocks;
  });
  mod.def("packed_gemm_supported", &wb::packed_gemm_supported);
  mod.def("packed_weights_count", &wb::packed_weights_count);
  mod.def("packed_products_count", &wb::packed_products_count);
  mod.def("packed_gemm_isa", [] {
    switch (wb::packed_gemm_isa()) {
      case wb::PackedIsa::Avx512: return std::string("avx512");
      case wb::PackedIsa::Avx2: return std::string("avx2");
      default: return std::string("none");
    }
  });
  mod.def("set_packed_gemm_isa", [](const std::string& isa) {
    if (isa == "avx512") return wb::set_packed_gemm_isa(wb::PackedIsa::Avx512);
    if (isa == "avx2") return wb::set_packed_gemm_isa(wb::PackedIsa::Avx2);
    if (isa == "none") return wb::set_packed_gemm_isa(wb::PackedIsa::None);
    throw py::value_error("isa must be 'avx512', 'avx2' or 'none', got '" + isa + "'");
  }, py::arg("isa"), "Run walkback's packed GEMM with this instruction set (tests); returns "
     "False, changing nothing, where the processor lacks it.");
  mod.def("prefer_packed_gemm", &wb::prefer_packed_gemm);
  mod.def("set_prefer_packed_gemm", &wb::set_prefer_packed_gemm, py::arg("mode"),
          "Products of hundreds of rows by weights used a few times (the sequence GSN's "
          "convolutions, DAE training): 1 through the packed GEMM, 0 through the BLAS, -1 the "
          "default (packed where its kernel is wider than OpenBLAS's). For tests and A/B "
          "timings.");
  mod.def("set_packed_gemm", &wb::set_packed_gemm, py::arg("on"),
          "Switch walkback's own packed GEMM off or on for this process (A/B timings, tests); "
          "returns whether it is now used.");
  bind_gsn(mod);
  bind_eval(mod);
  bind_diffusion(mod);
  bind_sequence(mod);
  bind_shaped(mod);
  mod.def("set_num_threads", &wb::blas::set_num_threads);
  mod.def("get_num_threads", &wb::num_threads);
  mod.def("set_reproducible", &wb::set_reproducible);
  mod.def("get_reproducible", &wb::reproducible);
  mod.def("blas_info", &wb::blas::describe);
}
