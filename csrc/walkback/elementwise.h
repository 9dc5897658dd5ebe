// The maths of one element, written once for the CPU loops and the CUDA kernels: corruption,
// activations, reconstruction means, sampling and the reconstruction NLL with its derivative.
// Everything here is a pure function of its arguments (the uniforms come in from rng.h).
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>

#include "walkback/common.h"
#include "walkback/fast_math.h"
#include "walkback/rng.h"

namespace wb {

// ---------------------------------------------------------------- exp, sigmoid, tanh
WB_HD float wb_exp(float x) { return fast_expf(x); }
WB_HD float wb_log(float x) { return fast_logf(x); }
WB_HD double wb_log(double x) { return log(x); }
WB_HD double wb_exp(double x) { return exp(x); }
// sqrt in the argument's own precision: a bare sqrt(float) may resolve to the double one, which
// drags the rest of the expression into double and keeps the loop scalar.
WB_HD float wb_sqrt(float x) { return sqrtf(x); }
WB_HD double wb_sqrt(double x) { return sqrt(x); }

template <class T>
WB_HD T sigmoid(T x) {
  return T(1) / (T(1) + wb_exp(-x));
}

// tanh through exp(-2|x|): no cancellation for large |x|; absolute error ~1e-7 in float32.
template <class T>
WB_HD T tanh_act(T x) {
  const T e = wb_exp(x < T(0) ? T(2) * x : T(-2) * x);
  const T t = (T(1) - e) / (T(1) + e);
  return x < T(0) ? -t : t;
}
WB_HD double tanh_act(double x) { return tanh(x); }

template <class T>
WB_HD T activate(Activation a, T x) {
  switch (a) {
    case Activation::Sigmoid: return sigmoid(x);
    case Activation::Tanh: return tanh_act(x);
    case Activation::Relu: return x > T(0) ? x : T(0);
    case Activation::LeakyRelu: return x > T(0) ? x : T(0.05) * x;
    default: return x;
  }
}

// d act / d pre-activation, written in terms of the activation's output y.
template <class T>
WB_HD T activation_grad_from_output(Activation a, T y) {
  switch (a) {
    case Activation::Sigmoid: return y * (T(1) - y);
    case Activation::Tanh: return T(1) - y * y;
    case Activation::Relu: return y > T(0) ? T(1) : T(0);
    case Activation::LeakyRelu: return y > T(0) ? T(1) : T(0.05);
    default: return T(1);
  }
}

// ---------------------------------------------------------------- corruption C(x~ | x)
// u is the unit's uniform from the corruption stream, n its normal (used by Gaussian only).
// Salt-and-pepper: with probability p the unit is replaced by 0 or 1, equally likely; one
// uniform decides both, since u given u < p is uniform on (0, p).
template <class T>
WB_HD T corrupt_value(Corruption kind, T param, T x, float u, float n) {
  switch (kind) {
    case Corruption::SaltAndPepper:
      return u < param ? (u < T(0.5) * param ? T(0) : T(1)) : x;
    case Corruption::Masking: return u < param ? T(0) : x;
    case Corruption::BitFlip: return u < param ? T(1) - x : x;
    case Corruption::Gaussian: return x + param * T(n);
    default: return x;
  }
}

WB_HD bool corruption_needs_normal(Corruption kind) { return kind == Corruption::Gaussian; }
WB_HD bool corruption_needs_uniform(Corruption kind) {
  return kind != Corruption::None && !corruption_needs_normal(kind);
}

// ---------------------------------------------------------------- reconstruction p(x | w)
// The mean w of p(x | w) from the decoder's pre-activation o.
template <class T>
WB_HD T reconstruction_mean(Reconstruction r, T o) {
  return r == Reconstruction::Bernoulli ? sigmoid(o) : o;
}

// A sample of p(x | w): u is the sampling stream's uniform, n its normal.
template <class T>
WB_HD T reconstruction_sample(Reconstruction r, T mean, T sigma, float u, float n) {
  return r == Reconstruction::Bernoulli ? (T(u) < mean ? T(1) : T(0)) : mean + sigma * T(n);
}

// log(1 + exp(x)) = max(x, 0) + log(1 + exp(-|x|)), branch-free. In float32 log(1 + e) is
// taken as log of the rounded 1 + e: an absolute error below 1e-7.
WB_HD float softplus(float x) {
  const float a = x < 0.0f ? -x : x;
  return (x > 0.0f ? x : 0.0f) + fast_logf(1.0f + fast_expf(-a));
}
WB_HD double softplus(double x) {
  return (x > 0.0 ? x : 0.0) + log1p(exp(-fabs(x)));
}

// -log p(x | w(o)) of the clean target x, from the pre-activation o (stable for any o).
template <class T>
WB_HD T reconstruction_nll(Reconstruction r, T o, T x, T sigma) {
  if (r == Reconstruction::Bernoulli) return softplus(o) - x * o;  // stable for any o
  const T z = (x - o) / sigma;
  return T(0.5) * z * z + wb_log(sigma) + T(0.91893853320467274178);  // log sqrt(2 pi)
}

// d(-log p(x | w(o))) / d o.
template <class T>
WB_HD T reconstruction_nll_grad(Reconstruction r, T o, T x, T sigma) {
  if (r == Reconstruction::Bernoulli) return sigmoid(o) - x;
  return (o - x) / (sigma * sigma);
}

// ---------------------------------------------------------------- GSN hidden units
// A GSN hidden unit (Bengio et al. 2014): Gaussian noise before and after the activation,
// reparametrized, so d h / d pre = act'(pre + s_pre n_pre). Returns h; y gets the activation's
// output (what act' is computed from in the backward pass).
template <class T>
WB_HD T gsn_hidden_unit(Activation a, T pre, T s_pre, float n_pre, T s_post, float n_post, T& y) {
  y = activate<T>(a, pre + s_pre * T(n_pre));
  return y + s_post * T(n_post);
}

// ---------------------------------------------------------------- categorical segments
// A categorical segment is k visible units holding a one-hot state (or a distribution); its
// reconstruction is softmax(o) over the k units. These loop over one segment of one row.
template <class T>
WB_HD T categorical_logsumexp(const T* o, int64_t k) {
  T mx = o[0];
  for (int64_t i = 1; i < k; ++i) mx = o[i] > mx ? o[i] : mx;
  T s = T(0);
  for (int64_t i = 0; i < k; ++i) s += wb_exp(o[i] - mx);
  return mx + wb_log(s);
}

// -log p(x | o) = sum(x) logsumexp(o) - x . o (x one-hot, or a distribution as a soft target);
// writes d/do_i = scale (sum(x) softmax_i - x_i) into d_o when it is not null.
template <class T>
WB_HD T categorical_nll_grad(const T* o, const T* x, int64_t k, T scale, T* d_o) {
  const T lse = categorical_logsumexp(o, k);
  T sx = T(0), dot = T(0);
  for (int64_t i = 0; i < k; ++i) {
    sx += x[i];
    dot += x[i] * o[i];
  }
  if (d_o)
    for (int64_t i = 0; i < k; ++i) d_o[i] = scale * (sx * wb_exp(o[i] - lse) - x[i]);
  return sx * lse - dot;
}

// The softmax of o in place (the segment's mean), then a one-hot sample drawn by inverting the
// cumulative distribution at the uniform u, written into x.
template <class T>
WB_HD void categorical_mean_sample(T* o, T* x, int64_t k, float u) {
  const T lse = categorical_logsumexp(o, k);
  for (int64_t i = 0; i < k; ++i) o[i] = wb_exp(o[i] - lse);
  T c = T(0);
  int64_t pick = k - 1;  // rounding can leave the total a hair below 1: the last class takes it
  for (int64_t i = 0; i < k; ++i) {
    c += o[i];
    if (T(u) < c) {
      pick = i;
      break;
    }
  }
  for (int64_t i = 0; i < k; ++i) x[i] = i == pick ? T(1) : T(0);
}

// ---------------------------------------------------------------- VAE chains (ABC shaping)
// A Gaussian latent unit of q(z | x) = N(mu, exp(lv)), reparametrized: z = mu + exp(lv / 2) eps.
template <class T>
WB_HD T gauss_reparam(T mu, T lv, T eps) {
  return mu + wb_exp(T(0.5) * lv) * eps;
}

// d z / d lv of gauss_reparam (d z / d mu is 1).
template <class T>
WB_HD T gauss_reparam_dlv(T lv, T eps) {
  return T(0.5) * wb_exp(T(0.5) * lv) * eps;
}

// KL(N(mu, exp(lv)) || N(0, 1)) of one unit; d_mu and d_lv get its derivatives.
template <class T>
WB_HD T gauss_kl_std_normal(T mu, T lv, T& d_mu, T& d_lv) {
  const T e = wb_exp(lv);
  d_mu = mu;
  d_lv = T(0.5) * (e - T(1));
  return T(0.5) * (mu * mu + e - T(1) - lv);
}

// The shaping penalty of one guide score s (Bachman & Precup 2015): (relu(-s) + relu(-s)^2) / 2,
// pushing a chain state towards where the guide says "data"; d_s gets d / ds.
template <class T>
WB_HD T shaping_penalty(T s, T& d_s) {
  const T r = s < T(0) ? -s : T(0);
  d_s = s < T(0) ? -(T(1) + T(2) * r) / T(2) : T(0);
  return (r + r * r) / T(2);
}

// ---------------------------------------------------------------- diffusion (Sohl-Dickstein 2015)
// Time t runs 1..T; beta_t is the forward step's noise, alphabar_t = prod_{s<=t} (1 - beta_s).
// The reverse step p(x_{t-1} | x_t) is read from the network's coefficients zm, zs (Gaussian) or
// z (binomial), mixed over the temporal basis; the row's scalars come in a DiffusionStep.
template <class T>
struct DiffusionStep {
  T sqrt_alpha;     // sqrt(1 - beta_t)
  T sqrt_beta;      // sqrt(beta_t)
  T logit_beta;     // logit(beta_t), the reverse variance's offset
  T inv_sqrt_T;     // 1 / sqrt(T): scales zs, as the original code
  // the forward posterior q(x_{t-1} | x_t, x_0): mean c0 x_0 + ct x_t, variance var_q
  T c0, ct, var_q, log_var_q;
  T half_beta;      // beta_t / 2, the binomial step's flip probability
  T ab_prev;        // alphabar_{t-1}
  T beta, alpha;    // beta_t, 1 - beta_t
};

// A draw of x_t ~ q(x_t | x_0): Gaussian, sqrt(ab_t) x_0 + sqrt(1 - ab_t) n; binomial, a
// Bernoulli of rate ab_t x_0 + (1 - ab_t) / 2 from the uniform u.
template <class T>
WB_HD T diffusion_gauss_forward(T x0, T sqrt_ab, T sqrt_1m_ab, float n) {
  return sqrt_ab * x0 + sqrt_1m_ab * T(n);
}
template <class T>
WB_HD T diffusion_binomial_forward(T x0, T ab, float u) {
  return T(u) < ab * x0 + (T(1) - ab) * T(0.5) ? T(1) : T(0);
}

// The Gaussian reverse step's mean and variance: mu = x_t sqrt(alpha) + zm sqrt(beta),
// var = sigmoid(zs / sqrt(T) + logit beta); log_var is log(var), computed without underflow.
template <class T>
WB_HD void diffusion_gauss_reverse(const DiffusionStep<T>& s, T xt, T zm, T zs, T& mu, T& var,
                                   T& log_var) {
  mu = xt * s.sqrt_alpha + zm * s.sqrt_beta;
  const T a = zs * s.inv_sqrt_T + s.logit_beta;
  var = sigmoid(a);
  log_var = -softplus(-a);
}

// KL(q(x_{t-1} | x_t, x_0) || p(x_{t-1} | x_t)) of one Gaussian unit and its derivatives with
// respect to zm and zs.
template <class T>
WB_HD T diffusion_gauss_kl(const DiffusionStep<T>& s, T x0, T xt, T zm, T zs, T& d_zm, T& d_zs) {
  T mu, var, log_var;
  diffusion_gauss_reverse(s, xt, zm, zs, mu, var, log_var);
  const T mu_q = s.c0 * x0 + s.ct * xt;
  const T e = mu - mu_q;
  const T r = (s.var_q + e * e) / var;
  d_zm = e / var * s.sqrt_beta;
  d_zs = T(0.5) * (T(1) - var) * (T(1) - r) * s.inv_sqrt_T;
  return T(0.5) * (log_var - s.log_var_q + r - T(1));
}

// A learned schedule (the paper's section 2.4.1): the derivatives of one unit's KL with respect
// to beta_t and to A = alphabar_{t-1} with x_t held fixed, and with respect to x_t through
// mu, mu_q (not through the network: the caller adds that part). The posterior is
// N(var_q N, var_q) with 1 / var_q = 1 / (1 - A) + alpha / beta and
// N = sqrt(A) x_0 / (1 - A) + sqrt(alpha) x_t / beta.
template <class T>
WB_HD void diffusion_gauss_kl_schedule(const DiffusionStep<T>& s, T x0, T xt, T zm, T zs,
                                       T& g_beta, T& g_A, T& g_x) {
  T mu, var, log_var;
  diffusion_gauss_reverse(s, xt, zm, zs, mu, var, log_var);
  const T A = s.ab_prev, b = s.beta, al = s.alpha, vq = s.var_q;
  const T one_m_A = T(1) - A, sqrt_A = wb_sqrt(A);
  const T N = sqrt_A * x0 / one_m_A + s.sqrt_alpha * xt / b;
  const T e = mu - vq * N;
  const T k_mu = e / var;
  const T k_vq = T(0.5) * (T(1) / var - T(1) / vq);
  const T k_a = T(0.5) * (T(1) - var) * (T(1) - (vq + e * e) / var);
  const T dmu_db = -xt / (T(2) * s.sqrt_alpha) + zm / (T(2) * s.sqrt_beta);
  const T da_db = T(1) / (b * al);
  const T dvq_db = vq * vq / (b * b);                 // -vq^2 d lambda / d beta
  const T dvq_dA = -vq * vq / (one_m_A * one_m_A);    // -vq^2 d lambda / d A
  const T dN_dA = x0 * (T(1) / (T(2) * sqrt_A * one_m_A) + sqrt_A / (one_m_A * one_m_A));
  const T dN_db = xt * (-T(1) / (T(2) * s.sqrt_alpha * b) - s.sqrt_alpha / (b * b));
  const T dmuq_db = dvq_db * N + vq * dN_db;
  const T dmuq_dA = dvq_dA * N + vq * dN_dA;
  g_beta = k_mu * dmu_db + k_a * da_db - k_mu * dmuq_db + k_vq * dvq_db;
  g_A = -k_mu * dmuq_dA + k_vq * dvq_dA;
  g_x = k_mu * s.sqrt_alpha * (T(1) - vq / b);
}

// A sample of the reverse step, optionally multiplied by a Gaussian observation y of variance
// obs_var (the paper's section 2.5: the product of two Gaussians); obs_var <= 0 means none.
template <class T>
WB_HD T diffusion_gauss_sample(const DiffusionStep<T>& s, T xt, T zm, T zs, T y, T obs_var,
                               float n) {
  T mu, var, log_var;
  diffusion_gauss_reverse(s, xt, zm, zs, mu, var, log_var);
  if (obs_var > T(0)) {
    const T v = T(1) / (T(1) / var + T(1) / obs_var);
    mu = v * (mu / var + y / obs_var);
    var = v;
  }
  return mu + wb_sqrt(var) * T(n);
}

// x log(x / y) with 0 log 0 = 0.
template <class T>
WB_HD T xlogx_over_y(T x, T log_x, T log_y) {
  return x > T(0) ? x * (log_x - log_y) : T(0);
}

// The binomial reverse step's logit: z plus the logit of the forward step's own rate at x_t,
// x_t (1 - beta) + beta / 2, so that z = 0 is the reversal of the forward chain.
template <class T>
WB_HD T diffusion_binomial_logit(const DiffusionStep<T>& s, T xt, T z) {
  const T keep = T(1) - s.half_beta;
  const T lf = s.half_beta > T(0) ? wb_log(keep) - wb_log(s.half_beta) : T(0);
  return z + (xt > T(0.5) ? lf : -lf);
}

// The binomial forward posterior q(x_{t-1} = 1 | x_t, x_0) for binary x_0, x_t.
template <class T>
WB_HD T diffusion_binomial_posterior(const DiffusionStep<T>& s, T x0, T xt) {
  const T prior = s.ab_prev * x0 + (T(1) - s.ab_prev) * T(0.5);
  const T keep = T(1) - s.half_beta;
  const T l1 = xt > T(0.5) ? keep : s.half_beta, l0 = xt > T(0.5) ? s.half_beta : keep;
  return prior * l1 / (prior * l1 + (T(1) - prior) * l0);
}

// KL(Bernoulli(q) || Bernoulli(sigmoid(a))) for a = the reverse logit, and d KL / d z.
template <class T>
WB_HD T diffusion_binomial_kl(const DiffusionStep<T>& s, T x0, T xt, T z, T& d_z) {
  const T q = diffusion_binomial_posterior(s, x0, xt);
  const T a = diffusion_binomial_logit(s, xt, z);
  const T log_p = -softplus(-a), log_1mp = -softplus(a);
  d_z = sigmoid(a) - q;
  const T log_q = q > T(0) ? wb_log(q) : T(0);
  const T log_1mq = q < T(1) ? wb_log(T(1) - q) : T(0);
  return xlogx_over_y(q, log_q, log_p) + xlogx_over_y(T(1) - q, log_1mq, log_1mp);
}

// ---------------------------------------------------------------- optimizer updates
// SGD with (heavy-ball) momentum and L2 weight decay: v = mu v - lr (g + wd p); p += v.
template <class T>
WB_HD void sgd_update(T& p, T g, T& v, T lr, T momentum, T weight_decay) {
  v = momentum * v - lr * (g + weight_decay * p);
  p += v;
}

// RMSprop (Tieleman & Hinton 2012), the diffusion paper's optimizer:
// v = rho v + (1 - rho) g^2; p -= lr g / (sqrt(v) + eps), with L2 weight decay in g.
template <class T>
WB_HD void rmsprop_update(T& p, T g, T& v, T lr, T rho, T eps, T weight_decay) {
  g += weight_decay * p;
  v = rho * v + (T(1) - rho) * g * g;
  p -= lr * g / (wb_sqrt(v) + eps);
}

// Adam (Kingma & Ba 2015) with bias corrections bc1 = 1 - beta1^t, bc2 = 1 - beta2^t and L2
// weight decay added to the gradient.
template <class T>
WB_HD void adam_update(T& p, T g, T& m, T& v, T lr, T beta1, T beta2, T eps, T bc1, T bc2,
                       T weight_decay) {
  g += weight_decay * p;
  m = beta1 * m + (T(1) - beta1) * g;
  v = beta2 * v + (T(1) - beta2) * g * g;
  p -= lr * (m / bc1) / (wb_sqrt(v / bc2) + eps);
}

}  // namespace wb
