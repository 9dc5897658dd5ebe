#include "walkback/shaped_chain.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "walkback/elementwise.h"
#include "walkback/random_ops.h"
#include "walkback/thread_pool.h"

namespace wb {
namespace {

// The activations of one pass through a Net.
template <class T>
struct Pass {
  std::vector<std::vector<T>> acts;  // body layers
  std::vector<T> out;                // head
};

template <class T>
void net_forward(const Net<T>& n, int64_t B, const T* x, Pass<T>& p) {
  if (n.body.empty()) throw std::invalid_argument("a network needs at least one hidden layer");
  p.acts.resize(n.body.size());
  std::vector<T*> ptrs;
  for (size_t l = 0; l < n.body.size(); ++l) {
    p.acts[l].resize(B * n.body[l].out);
    ptrs.push_back(p.acts[l].data());
  }
  mlp_forward<T>(n.body, n.act, B, x, ptrs);
  p.out.resize(B * n.head.out);
  mlp_forward<T>({n.head}, Activation::Identity, B, p.acts.back().data(), {p.out.data()});
}

// Back-propagates d_out (B x head.out, overwritten) through the net: adds the parameter
// gradients into g (when given; none are computed otherwise) and writes d loss / d x into d_x
// (when given).
template <class T>
void net_backward(const Net<T>& n, int64_t B, const T* x, Pass<T>& p, T* d_out, NetGrads<T>* g,
                  T* d_x) {
  const size_t L = n.body.size();
  std::vector<T*> gW(L + 1, nullptr), gb(L + 1, nullptr);
  if (g)
    for (size_t l = 0; l <= L; ++l) {
      gW[l] = g->W[l];
      gb[l] = g->b[l];
    }
  std::vector<T> d_body(B * n.head.in);
  mlp_backward<T>({n.head}, Activation::Identity, B, p.acts.back().data(), {p.out.data()}, d_out,
                  {gW[L]}, {gb[L]}, d_body.data(), true);
  std::vector<T*> acts;
  for (size_t l = 0; l < L; ++l) acts.push_back(p.acts[l].data());
  gW.pop_back();
  gb.pop_back();
  mlp_backward<T>(n.body, n.act, B, x, acts, d_body.data(), gW, gb, d_x, true);
}

}  // namespace

template <class T>
std::array<double, 3> shaped_generator(const ShapedModel<T>& m, const ShapedArgs& a, const T* x,
                                       NetGrads<T>* genc, NetGrads<T>* gdec, T* states) {
  const int64_t B = a.B, S = a.steps, D = m.D, Z = m.latent;
  if (B < 1 || S < 1) throw std::invalid_argument("shaped chain: empty batch or no steps");
  const StreamKey key = stream_key(a.seed);
  std::vector<Pass<T>> pe(S), pd(S), pg(S + 1);
  std::vector<std::vector<T>> xs(S + 1), eps(S), z(S);
  xs[0].assign(x, x + B * D);
  for (int64_t i = 0; i < S; ++i) {
    net_forward(m.enc, B, xs[i].data(), pe[i]);
    eps[i].resize(B * Z);
    z[i].resize(B * Z);
    pool().parallel_for(B, [&](int64_t b0, int64_t b1) {
      std::vector<float> nrm(Z);
      for (int64_t b = b0; b < b1; ++b) {
        normal_row(key, a.first_chain + uint32_t(b), uint32_t(i), kStreamHidden, 0, Z, nrm.data());
        for (int64_t k = 0; k < Z; ++k) {
          const T mu = pe[i].out[b * 2 * Z + k], lv = pe[i].out[b * 2 * Z + Z + k];
          eps[i][b * Z + k] = T(nrm[k]);
          z[i][b * Z + k] = gauss_reparam<T>(mu, lv, T(nrm[k]));
        }
      }
    });
    net_forward(m.dec, B, z[i].data(), pd[i]);
    xs[i + 1].resize(B * D);
    for (int64_t j = 0; j < B * D; ++j) xs[i + 1][j] = sigmoid<T>(pd[i].out[j]);
  }
  double nll = 0.0, kl = 0.0, shape = 0.0;
  T w = T(1);
  for (int64_t i = 0; i < S; ++i, w *= m.decay) {
    const std::vector<T>& t = m.walkback ? xs[0] : xs[i];
    double s = 0.0;
    for (int64_t j = 0; j < B * D; ++j)
      s += double(reconstruction_nll<T>(Reconstruction::Bernoulli, pd[i].out[j], t[j], T(1)));
    nll += double(w) * s;
    double k = 0.0;
    for (int64_t b = 0; b < B; ++b)
      for (int64_t q = 0; q < Z; ++q) {
        const T mu = pe[i].out[b * 2 * Z + q], lv = pe[i].out[b * 2 * Z + Z + q];
        T d_mu, d_lv;
        k += double(gauss_kl_std_normal<T>(mu, lv, d_mu, d_lv));
      }
    kl += double(w * m.kld) * k;
  }
  if (m.shaping > T(0))
    for (int64_t j = 1; j <= S; ++j) {
      net_forward(m.guide, B, xs[j].data(), pg[j]);
      for (int64_t b = 0; b < B; ++b) {
        T d_s;
        shape += double(m.shaping) * double(shaping_penalty<T>(pg[j].out[b], d_s));
      }
    }
  if (states)
    for (int64_t j = 1; j <= S; ++j) std::copy(xs[j].begin(), xs[j].end(), states + (j - 1) * B * D);
  const std::array<double, 3> parts{nll / double(B), kl / double(B), shape / double(B)};
  if (!genc && !gdec) return parts;

  const T invB = T(1) / T(B);
  std::vector<T> dx_next(B * D, T(0)), dx_prev(B * D), d_o(B * D), dz(B * Z), d_e(B * 2 * Z),
      d_s(B), dxs(B * D);
  std::vector<T> weights(S);
  for (int64_t i = 0; i < S; ++i) weights[i] = i == 0 ? T(1) : weights[i - 1] * m.decay;
  for (int64_t i = S - 1; i >= 0; --i) {
    const T wi = weights[i];
    // d loss / d x_{i+1}: the next step's encoder (in dx_next) and the shaping term.
    if (m.shaping > T(0)) {
      for (int64_t b = 0; b < B; ++b) {
        shaping_penalty<T>(pg[i + 1].out[b], d_s[b]);
        d_s[b] *= m.shaping * invB;
      }
      net_backward<T>(m.guide, B, xs[i + 1].data(), pg[i + 1], d_s.data(), nullptr, dxs.data());
      for (int64_t j = 0; j < B * D; ++j) dx_next[j] += dxs[j];
    }
    const std::vector<T>& t = m.walkback ? xs[0] : xs[i];
    for (int64_t j = 0; j < B * D; ++j) {
      const T xn = xs[i + 1][j];
      d_o[j] = wi * invB *
                   reconstruction_nll_grad<T>(Reconstruction::Bernoulli, pd[i].out[j], t[j], T(1)) +
               dx_next[j] * activation_grad_from_output<T>(Activation::Sigmoid, xn);
    }
    net_backward<T>(m.dec, B, z[i].data(), pd[i], d_o.data(), gdec, dz.data());
    for (int64_t b = 0; b < B; ++b)
      for (int64_t q = 0; q < Z; ++q) {
        const T mu = pe[i].out[b * 2 * Z + q], lv = pe[i].out[b * 2 * Z + Z + q];
        const T dzq = dz[b * Z + q], e = eps[i][b * Z + q];
        T k_mu, k_lv;
        gauss_kl_std_normal<T>(mu, lv, k_mu, k_lv);
        d_e[b * 2 * Z + q] = dzq + wi * m.kld * invB * k_mu;
        d_e[b * 2 * Z + Z + q] = dzq * gauss_reparam_dlv<T>(lv, e) + wi * m.kld * invB * k_lv;
      }
    net_backward<T>(m.enc, B, xs[i].data(), pe[i], d_e.data(), genc,
                    i > 0 ? dx_prev.data() : nullptr);
    if (i > 0) {
      // Walkout's target at step i is x_i itself: d/dt [softplus(o) - t o] = -o.
      if (!m.walkback)
        for (int64_t j = 0; j < B * D; ++j) dx_prev[j] -= wi * invB * pd[i].out[j];
      std::swap(dx_next, dx_prev);
    }
  }
  return parts;
}

template <class T>
double shaped_guide(const ShapedModel<T>& m, int64_t B, const T* x, int64_t M, const T* states,
                    NetGrads<T>* g) {
  if (B < 1 || M < 1) throw std::invalid_argument("shaped guide: empty data or chain states");
  double loss = 0.0;
  for (int kind = 0; kind < 2; ++kind) {
    const int64_t rows = kind == 0 ? B : M;
    const T* in = kind == 0 ? x : states;
    Pass<T> p;
    net_forward(m.guide, rows, in, p);
    std::vector<T> d(rows);
    for (int64_t r = 0; r < rows; ++r) {
      const T s = p.out[r];
      // The logistic loss: data labelled 1, chain states 0 (a Bernoulli NLL of the label).
      const T label = kind == 0 ? T(1) : T(0);
      loss += double(reconstruction_nll<T>(Reconstruction::Bernoulli, s, label, T(1))) /
              double(rows);
      d[r] = reconstruction_nll_grad<T>(Reconstruction::Bernoulli, s, label, T(1)) / T(rows);
    }
    if (g) net_backward<T>(m.guide, rows, in, p, d.data(), g, nullptr);
  }
  return loss;
}

template <class T>
void shaped_sample(const ShapedModel<T>& m, int64_t n, int64_t steps, uint64_t seed,
                   uint32_t first_chain, T* out) {
  const int64_t D = m.D, Z = m.latent;
  const StreamKey key = stream_key(seed);
  std::vector<T> z(n * Z), x(n * D);
  Pass<T> pe, pd;
  for (int64_t i = 0; i < steps; ++i) {
    if (i > 0) net_forward(m.enc, n, x.data(), pe);
    pool().parallel_for(n, [&](int64_t b0, int64_t b1) {
      std::vector<float> nrm(Z);
      for (int64_t b = b0; b < b1; ++b) {
        normal_row(key, first_chain + uint32_t(b), uint32_t(i), i == 0 ? kStreamInit : kStreamHidden,
                   0, Z, nrm.data());
        for (int64_t k = 0; k < Z; ++k)
          z[b * Z + k] = i == 0 ? T(nrm[k])
                                : gauss_reparam<T>(pe.out[b * 2 * Z + k],
                                                   pe.out[b * 2 * Z + Z + k], T(nrm[k]));
      }
    });
    net_forward(m.dec, n, z.data(), pd);
    for (int64_t j = 0; j < n * D; ++j) x[j] = sigmoid<T>(pd.out[j]);
    std::copy(x.begin(), x.end(), out + i * n * D);
  }
}

#define WB_SHAPED(T)                                                                         \
  template std::array<double, 3> shaped_generator<T>(const ShapedModel<T>&, const ShapedArgs&, \
                                                     const T*, NetGrads<T>*, NetGrads<T>*,   \
                                                     T*);                                    \
  template double shaped_guide<T>(const ShapedModel<T>&, int64_t, const T*, int64_t,          \
                                  const T*, NetGrads<T>*);                                   \
  template void shaped_sample<T>(const ShapedModel<T>&, int64_t, int64_t, uint64_t, uint32_t, \
                                 T*);
WB_SHAPED(float)
WB_SHAPED(double)
#undef WB_SHAPED

}  // namespace wb
