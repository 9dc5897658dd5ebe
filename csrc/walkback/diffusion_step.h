// The scalars of one diffusion step, shared by the bound (diffusion_bound.cpp) and the reverse
// chain (diffusion_reverse.cpp). Internal to the core.
#pragma once
#include <cmath>
#include <cstdint>

#include "walkback/diffusion.h"
#include "walkback/elementwise.h"

namespace wb::detail {

// The scalars of step t (1-based) in the model's type; the posterior's only for t >= 2.
template <class T, class U = T>
DiffusionStep<U> step_scalars(const DiffusionNet<T>& m, int64_t t) {
  const double beta = m.beta[t - 1], alpha = 1.0 - beta;
  const double ab_prev = t > 1 ? m.alphabar[t - 2] : 1.0;
  DiffusionStep<U> s{};
  s.sqrt_alpha = static_cast<U>(std::sqrt(alpha));
  s.sqrt_beta = static_cast<U>(std::sqrt(beta));
  s.logit_beta = static_cast<U>(std::log(beta) - std::log1p(-beta));
  s.inv_sqrt_T = static_cast<U>(1.0 / std::sqrt(static_cast<double>(m.steps)));
  s.half_beta = static_cast<U>(0.5 * beta);
  s.ab_prev = static_cast<U>(ab_prev);
  s.beta = static_cast<U>(beta);
  s.alpha = static_cast<U>(alpha);
  if (t > 1) {
    // q(x_{t-1} | x_t, x_0) = N(c0 x_0 + ct x_t, 1 / lambda): the product of
    // q(x_{t-1} | x_0) = N(sqrt(ab_prev) x_0, c1) and the step's likelihood in x_{t-1}.
    const double c1 = 1.0 - ab_prev, c2 = beta / alpha, lambda = 1.0 / c1 + 1.0 / c2;
    s.c0 = static_cast<U>(std::sqrt(ab_prev) / c1 / lambda);
    s.ct = static_cast<U>(1.0 / (std::sqrt(alpha) * c2) / lambda);
    s.var_q = static_cast<U>(1.0 / lambda);
    s.log_var_q = static_cast<U>(-std::log(lambda));
  }
  return s;
}

}  // namespace wb::detail
