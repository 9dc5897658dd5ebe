// Turns run-time codes into compile-time constants, so each hot loop is compiled once per
// corruption / reconstruction / activation with no branch inside it.
#pragma once
#include <stdexcept>
#include <string>
#include <type_traits>

#include "walkback/common.h"

namespace wb {

template <class F>
decltype(auto) with_corruption(Corruption k, F&& f) {
  switch (k) {
    case Corruption::None: return f(std::integral_constant<Corruption, Corruption::None>{});
    case Corruption::SaltAndPepper:
      return f(std::integral_constant<Corruption, Corruption::SaltAndPepper>{});
    case Corruption::Masking: return f(std::integral_constant<Corruption, Corruption::Masking>{});
    case Corruption::Gaussian: return f(std::integral_constant<Corruption, Corruption::Gaussian>{});
    case Corruption::BitFlip: return f(std::integral_constant<Corruption, Corruption::BitFlip>{});
  }
  throw std::invalid_argument("unknown corruption code " + std::to_string(static_cast<int>(k)));
}

template <class F>
decltype(auto) with_activation(Activation a, F&& f) {
  switch (a) {
    case Activation::Sigmoid: return f(std::integral_constant<Activation, Activation::Sigmoid>{});
    case Activation::Tanh: return f(std::integral_constant<Activation, Activation::Tanh>{});
    case Activation::Relu: return f(std::integral_constant<Activation, Activation::Relu>{});
    case Activation::Identity:
      return f(std::integral_constant<Activation, Activation::Identity>{});
    case Activation::LeakyRelu:
      return f(std::integral_constant<Activation, Activation::LeakyRelu>{});
  }
  throw std::invalid_argument("unknown activation code " + std::to_string(static_cast<int>(a)));
}

template <class F>
decltype(auto) with_reconstruction(Reconstruction r, F&& f) {
  switch (r) {
    case Reconstruction::Bernoulli:
      return f(std::integral_constant<Reconstruction, Reconstruction::Bernoulli>{});
    case Reconstruction::Gaussian:
      return f(std::integral_constant<Reconstruction, Reconstruction::Gaussian>{});
    case Reconstruction::Categorical: break;  // a row-level distribution: see gsn_visible.h
  }
  throw std::invalid_argument("unknown reconstruction code " +
                              std::to_string(static_cast<int>(r)));
}

}  // namespace wb
