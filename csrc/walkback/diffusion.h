// Diffusion inversion on the CPU (Sohl-Dickstein et al. 2015): the Monte Carlo estimate of the
// negative log-likelihood bound with its gradients, and the reverse chain. The network is a
// dense stack (dense_mlp.h) whose readout gives K * J coefficients per visible unit (K = 2 for
// the Gaussian kind: mean and variance; 1 for the binomial kind), mixed over J temporal basis
// functions at the row's time step.
#pragma once
#include <cstdint>
#include <vector>

#include "walkback/dense_mlp.h"

namespace wb {

enum class DiffusionKind : int { Gaussian = 0, Binomial = 1 };

template <class T>
struct DiffusionNet {
  DiffusionKind kind = DiffusionKind::Gaussian;
  int64_t D = 0, steps = 0, J = 0;
  std::vector<DenseLayer<T>> hidden;       // at least one layer, leaky ReLU
  const T* Wout = nullptr;                 // (H, J * D * K), columns ordered (j, unit, k)
  const T* bout = nullptr;                 // (J * D * K)
  const double* beta = nullptr;            // (steps): beta_t at index t - 1
  const double* alphabar = nullptr;        // (steps): prod_{s <= t} (1 - beta_s)
  const double* basis = nullptr;           // (steps, J): g_j(t) at row t - 1; zeros are skipped
  double dequantize = 0;                   // Gaussian: width of the uniform noise added to x_0
  int64_t K() const { return kind == DiffusionKind::Gaussian ? 2 : 1; }
  int64_t H() const { return hidden.back().out; }
};

template <class T>
struct DiffusionGrads {
  std::vector<T*> W, b;  // per hidden layer
  T* Wout = nullptr;
  T* bout = nullptr;
};

struct BoundArgs {
  int64_t batch = 0;
  uint64_t seed = 0;
  uint32_t first_chain = 0;
  const int32_t* t = nullptr;  // per row, in [2, steps]; null: drawn uniformly per row
  // A learned schedule (Gaussian kind, with grads): per row, the derivatives of the mean loss
  // with respect to the row's beta_t and alphabar_{t-1} (x_t moving with them, through the
  // network too), and the row's t.
  double* g_beta = nullptr;
  double* g_abprev = nullptr;
  int32_t* t_out = nullptr;
};

// The per-row estimate of -K (nats; Sohl-Dickstein et al. eq. 14): (T - 1) KL_t summed over
// units at the row's t, plus the entropy terms. Writes it to row_loss (when not null), returns
// its mean over the rows, and with grads writes the gradients of that mean.
template <class T>
double diffusion_bound(const DiffusionNet<T>& m, const BoundArgs& a, const T* x0,
                       double* row_loss, DiffusionGrads<T>* grads);

// The per-row constant of -K: the entropy terms -H_q(X_T | X_0) + H_q(X_1 | X_0) + H_p(X_T).
template <class T>
double diffusion_bound_constant(const DiffusionNet<T>& m);

template <class T>
struct ReverseArgs {
  int64_t n = 0;
  uint64_t seed = 0;
  uint32_t first_chain = 0;
  int64_t t_hi = 0, t_lo = 0;       // runs the steps t = t_hi, t_hi - 1, ..., t_lo (x_t -> x_{t-1})
  const uint8_t* clamp = nullptr;   // (n, D): units held at `known`
  const T* known = nullptr;         // (n, D)
  const T* y = nullptr;             // (n, D): a Gaussian observation (Gaussian kind), or null
  double obs_var = 0;               // its variance
};

// x (n, D) holds x_{t_hi} on entry and x_{t_lo - 1} on return.
template <class T>
void diffusion_reverse(const DiffusionNet<T>& m, const ReverseArgs<T>& a, T* x);

}  // namespace wb
