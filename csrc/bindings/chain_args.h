// The keyword arguments of a chain call, shared by the DAE and GSN bindings: the stream and
// step counts, the clamp mask, and the optional output arrays.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <vector>

#include "bindings/array_checks.h"
#include "walkback/dae_chain.h"

namespace wb::bind {
namespace py = pybind11;

// clamp: absent, a (D,) mask shared by every chain or a (B, D) mask per chain (uint8).
inline const uint8_t* clamp_arg(const py::kwargs& kw, py::ssize_t B, py::ssize_t D,
                                bool* per_chain) {
  auto clamp = opt_array(kw, "clamp");
  *per_chain = false;
  if (!clamp) return nullptr;
  if (clamp->ndim() == 1) {
    check_array(*clamp, "clamp", py::dtype::of<uint8_t>(), {D}, false);
  } else {
    check_array(*clamp, "clamp", py::dtype::of<uint8_t>(), {B, D}, false);
    *per_chain = true;
  }
  return in_ptr<uint8_t>(*clamp);
}

// An optional writeable output of the given shape, or nullptr when absent.
template <class T>
T* opt_out(const py::kwargs& kw, const char* name, const std::vector<py::ssize_t>& shape) {
  auto a = opt_array(kw, name);
  if (!a) return nullptr;
  check_array(*a, name, py::dtype::of<T>(), shape, true);
  return out_ptr<T>(*a);
}

template <class T>
struct ChainCall {
  ChainArgs args;
  T* records = nullptr;  // (steps / every, B, D) when every > 0
  T* means = nullptr;    // (B, D) or nullptr
};

// seed, first_step, first_chain, steps, burn_in, every, record_means, clamp, records, means.
template <class T>
ChainCall<T> chain_call(const py::kwargs& kw, py::ssize_t B, py::ssize_t D) {
  ChainCall<T> c;
  ChainArgs& a = c.args;
  a.chains = B;
  a.seed = kw["seed"].cast<uint64_t>();
  a.first_step = kw["first_step"].cast<uint32_t>();
  a.first_chain = kw["first_chain"].cast<uint32_t>();
  a.steps = kw["steps"].cast<int64_t>();
  a.burn_in = kw["burn_in"].cast<int64_t>();
  a.every = kw["every"].cast<int64_t>();
  a.record_means = kw["record_means"].cast<bool>();
  if (a.steps < 0 || a.burn_in < 0 || a.every < 0)
    throw py::value_error("steps, burn_in and every must be >= 0");
  a.clamp = clamp_arg(kw, B, D, &a.clamp_per_chain);
  if (a.every > 0) {
    c.records = opt_out<T>(kw, "records", {a.steps / a.every, B, D});
    if (!c.records) throw py::value_error("records: required when every > 0");
  }
  c.means = opt_out<T>(kw, "means", {B, D});
  return c;
}

}  // namespace wb::bind
