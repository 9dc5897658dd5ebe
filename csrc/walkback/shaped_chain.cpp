#include "walkback/shaped_chain.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <type_traits>

#include "walkback/elementwise.h"
#include "walkback/random_ops.h"
#include "walkback/reduce.h"
#include "walkback/simd.h"
#include "walkback/thread_pool.h"
#include "walkback/workspace.h"

namespace wb {
namespace {

// The activations of `rows` rows through a Net, stacked: a chain keeps step i's B rows at
// rows [i B, (i + 1) B), so each weight gradient is one product over all steps. The same shape
// holds the pre-activation gradients (body layers, then the head).
template <class T>
struct Pass {
  std::vector<std::vector<T>> acts;  // body layers
  std::vector<T> out;                // head
  void resize(const Net<T>& n, int64_t rows) {
    acts.resize(n.body.size());
    for (size_t l = 0; l < n.body.size(); ++l) acts[l].resize(rows * n.body[l].out);
    out.resize(rows * n.head.out);
  }
  std::vector<T*> act_rows(const Net<T>& n, int64_t r0) {
    std::vector<T*> p;
    for (size_t l = 0; l < acts.size(); ++l) p.push_back(acts[l].data() + r0 * n.body[l].out);
    return p;
  }
  T* out_rows(const Net<T>& n, int64_t r0) { return out.data() + r0 * n.head.out; }
  size_t bytes() const { return total_bytes(acts, out); }
};

// shaped_generator's buffers, kept per thread between calls (workspace.h).
template <class T>
struct GeneratorWork {
  Pass<T> pe, pd, pg, dg, dq, de, dd;
  std::vector<T> xall, eps, z, d_shape, dx_next, dx_prev, dz;
  size_t bytes() const {
    return pe.bytes() + pd.bytes() + pg.bytes() + dg.bytes() + dq.bytes() + de.bytes() +
           dd.bytes() + total_bytes(xall, eps, z, d_shape, dx_next, dx_prev, dz);
  }
};

// shaped_guide's.
template <class T>
struct GuideWork {
  Pass<T> p, dp;
  std::vector<T> in;
  size_t bytes() const { return p.bytes() + dp.bytes() + total_bytes(in); }
};

// Packed copies of the generator's two nets (pack_net), kept per thread between calls.
struct NetsPacked {
  PackedStack enc_body, enc_head, dec_body, dec_head;
  size_t bytes() const {
    return enc_body.bytes() + enc_head.bytes() + dec_body.bytes() + dec_head.bytes();
  }
};

// shaped_sample's packs (forward only), kept apart from the generator's.
struct SampleNetsPacked : NetsPacked {};

// Packs a net's layers, W (and W^T when `transposed_too`), and points them at the packs.
void pack_net(Net<float>& n, PackedStack& body, PackedStack& head, bool transposed_too = true) {
  pack_layers(n.body, body, transposed_too);
  std::vector<DenseLayer<float>> h{n.head};
  pack_layers(h, head, transposed_too);
  n.head = h[0];
}

// Rows [r0, r0 + B) of p from the B rows of x.
template <class T>
void net_forward(const Net<T>& n, int64_t B, const T* x, Pass<T>& p, int64_t r0) {
  if (n.body.empty()) throw std::invalid_argument("a network needs at least one hidden layer");
  const std::vector<T*> acts = p.act_rows(n, r0);
  mlp_forward<T>(n.body, n.act, B, x, acts);
  mlp_forward<T>({n.head}, Activation::Identity, B, acts.back(), {p.out_rows(n, r0)});
}

// Back-propagates rows [r0, r0 + B) of dp.out (d loss / d the head's output, filled by the
// caller) through the net, leaving every layer's pre-activation gradient in those rows of dp
// and d loss / d x in d_x (when given). No parameter gradient: see net_weight_grads.
template <class T>
void net_backward_data(const Net<T>& n, int64_t B, const T* x, Pass<T>& p, Pass<T>& dp,
                       int64_t r0, T* d_x) {
  const std::vector<T*> acts = p.act_rows(n, r0), deltas = dp.act_rows(n, r0);
  const size_t L = n.body.size();
  // The head is linear: d / d its input, into the top body layer's rows of dp.
  mlp_backward<T>({n.head}, Activation::Identity, B, acts.back(), {p.out_rows(n, r0)},
                  dp.out_rows(n, r0), {nullptr}, {nullptr}, deltas[L - 1]);
  const std::vector<T*> nulls(L, nullptr), below(deltas.begin(), deltas.end() - 1);
  mlp_backward<T>(n.body, n.act, B, x, acts, deltas[L - 1], nulls, nulls, d_x, false, below);
}

// g = the net's parameter gradients over all `rows` rows of p and dp (x: the rows' inputs).
template <class T>
void net_weight_grads(const Net<T>& n, int64_t rows, const T* x, const Pass<T>& p,
                      const Pass<T>& dp, const NetGrads<T>& g) {
  const size_t L = n.body.size();
  std::vector<const T*> acts, deltas;
  for (size_t l = 0; l < L; ++l) {
    acts.push_back(p.acts[l].data());
    deltas.push_back(dp.acts[l].data());
  }
  mlp_weight_grads<T>(n.body, rows, x, acts, deltas, std::vector<T*>(g.W.begin(), g.W.end() - 1),
                      std::vector<T*>(g.b.begin(), g.b.end() - 1), false);
  mlp_weight_grads<T>({n.head}, rows, p.acts[L - 1].data(), {}, {dp.out.data()}, {g.W[L]},
                      {g.b[L]}, false);
}

// One row of the decoder's output: the chain's next state and the row's weighted NLL terms.
template <class T>
WB_SIMD_CLONES void next_state_row(T* xn, T* nll, const T* o, const T* t, int64_t n) {
  for (int64_t j = 0; j < n; ++j) {
    xn[j] = sigmoid<T>(o[j]);
    nll[j] = reconstruction_nll<T>(Reconstruction::Bernoulli, o[j], t[j], T(1));
  }
}

// d loss / d o over one row: the reconstruction term (scaled), and d loss / d x_{i+1} (dx,
// plus dsh when given) through x_{i+1} = sigmoid(o).
template <class T>
WB_SIMD_CLONES void d_logits_row(T* d_o, const T* o, const T* t, const T* xn, const T* dx,
                                 const T* dsh, T scale, int64_t n) {
  // Two loops, not `dsh ? ... : ...` in one: a null dsh read under a mask is slow
  // (row_kernels.h).
  if (!dsh) {
    for (int64_t j = 0; j < n; ++j)
      d_o[j] = scale * reconstruction_nll_grad<T>(Reconstruction::Bernoulli, o[j], t[j], T(1)) +
               dx[j] * activation_grad_from_output<T>(Activation::Sigmoid, xn[j]);
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    const T d = dx[j] + dsh[j];
    d_o[j] = scale * reconstruction_nll_grad<T>(Reconstruction::Bernoulli, o[j], t[j], T(1)) +
             d * activation_grad_from_output<T>(Activation::Sigmoid, xn[j]);
  }
}

// The guide's logistic loss over its outputs `out` for B data rows (labelled 1) then M chain
// states (0), each kind averaged over its rows; d_out gets d loss / d out.
template <class T>
double guide_logistic(const T* out, T* d_out, int64_t B, int64_t M) {
  double loss[2] = {0.0, 0.0};
  for (int64_t r = 0; r < B + M; ++r) {
    const bool data = r < B;
    const T s = out[r], label = data ? T(1) : T(0), n = data ? T(B) : T(M);
    loss[data ? 0 : 1] += double(reconstruction_nll<T>(Reconstruction::Bernoulli, s, label, T(1)));
    d_out[r] = reconstruction_nll_grad<T>(Reconstruction::Bernoulli, s, label, T(1)) / n;
  }
  return loss[0] / double(B) + loss[1] / double(M);
}

}  // namespace

template <class T>
std::array<double, 3> shaped_generator(const ShapedModel<T>& model, const ShapedArgs& a,
                                       const T* x, NetGrads<T>* genc, NetGrads<T>* gdec,
                                       T* states, NetGrads<T>* gguide, double* guide_loss) {
  const int64_t B = a.B, S = a.steps, D = model.D, Z = model.latent, BD = a.B * model.D;
  if (B < 1 || S < 1) throw std::invalid_argument("shaped chain: empty batch or no steps");
  // The encoder's and decoder's layers packed once per call, both orientations: every step
  // multiplies by them forward, and again backward for the gradients of their inputs.
  ShapedModel<T> m = model;
  KeptWorkspace<NetsPacked> packed;
  if constexpr (std::is_same_v<T, float>) {
    if (packed_gemm_pays(B, S)) {
      pack_net(m.enc, packed->enc_body, packed->enc_head);
      pack_net(m.dec, packed->dec_body, packed->dec_head);
    }
  }
  const StreamKey key = stream_key(a.seed);
  std::vector<T> weights(S);
  for (int64_t i = 0; i < S; ++i) weights[i] = i == 0 ? T(1) : weights[i - 1] * m.decay;
  KeptWorkspace<GeneratorWork<T>> work;
  GeneratorWork<T>& w = *work;
  Pass<T>&pe = w.pe, &pd = w.pd, &pg = w.pg, &dg = w.dg, &de = w.de, &dd = w.dd;
  pe.resize(m.enc, S * B);
  pd.resize(m.dec, S * B);
  // x_0 .. x_S back to back: the encoder's inputs x_0 .. x_{S-1} are one (S B x D) matrix, and
  // so are the chain states x_1 .. x_S, which the guide takes in one pass each way.
  std::vector<T>&xall = w.xall, &eps = w.eps, &z = w.z;
  xall.resize((S + 1) * BD);
  eps.resize(S * B * Z);
  z.resize(S * B * Z);
  auto xs = [&](int64_t i) { return xall.data() + i * BD; };
  std::copy(x, x + BD, xall.begin());
  // Per-row sums (already weighted), added over rows in order at the end: the same result
  // for any number of threads.
  std::vector<double> row_nll(B, 0.0), row_kl(B, 0.0);
  for (int64_t i = 0; i < S; ++i) {
    net_forward(m.enc, B, xs(i), pe, i * B);
    T* eps_i = eps.data() + i * B * Z;
    T* z_i = z.data() + i * B * Z;
    const T* e = pe.out_rows(m.enc, i * B);
    const T wk = weights[i] * m.kld;
    pool().parallel_for(B, [&](int64_t b0, int64_t b1) {
      // The slice's draws at once (rows of a few units draw many chains per Philox pass).
      std::vector<float> draws((b1 - b0) * Z);
      normal_rows(key, a.first_chain + uint32_t(b0), b1 - b0, uint32_t(i), kStreamHidden, Z,
                  draws.data());
      for (int64_t b = b0; b < b1; ++b) {
        const float* nrm = draws.data() + (b - b0) * Z;
        double k = 0.0;
        for (int64_t q = 0; q < Z; ++q) {
          const T mu = e[b * 2 * Z + q], lv = e[b * 2 * Z + Z + q];
          eps_i[b * Z + q] = T(nrm[q]);
          z_i[b * Z + q] = gauss_reparam<T>(mu, lv, T(nrm[q]));
          T d_mu, d_lv;
          k += double(gauss_kl_std_normal<T>(mu, lv, d_mu, d_lv));
        }
        row_kl[b] += double(wk) * k;
      }
    });
    net_forward(m.dec, B, z_i, pd, i * B);
    const T* o = pd.out_rows(m.dec, i * B);
    const T* t = m.walkback ? xs(0) : xs(i);
    T* xn = xs(i + 1);
    const T wi = weights[i];
    pool().parallel_for(B, [&](int64_t b0, int64_t b1) {
      std::vector<T> nll(D);
      for (int64_t b = b0; b < b1; ++b) {
        next_state_row<T>(xn + b * D, nll.data(), o + b * D, t + b * D, D);
        row_nll[b] += double(wi) * sum_in_double(nll.data(), D);
      }
    });
  }
  double nll = 0.0, kl = 0.0, shape = 0.0;
  for (int64_t b = 0; b < B; ++b) {
    nll += row_nll[b];
    kl += row_kl[b];
  }
  // pg: the guide over x_1 .. x_S, from row g0. With the guide's own step (gguide) the data
  // x_0 come first, rows [0, B): x_0 .. x_S lie back to back in xall, so one pass serves the
  // shaping term and the guide's loss (the same parameters), as shaped_guide would on
  // [x; states].
  const bool guide_step = gguide != nullptr;
  const int64_t g0 = guide_step ? B : 0;
  if (m.shaping > T(0) || guide_step) {
    pg.resize(m.guide, g0 + S * B);
    net_forward(m.guide, g0 + S * B, xs(1) - g0 * D, pg, 0);
  }
  if (m.shaping > T(0))
    for (int64_t r = g0; r < g0 + S * B; ++r) {
      T d_s;
      shape += double(m.shaping) * double(shaping_penalty<T>(pg.out[r], d_s));
    }
  if (guide_step) {
    // The guide's gradients are written here, before the shaping term's backward pass reads
    // the guide's W: they must not alias its parameters (the Python side passes fresh arrays).
    Pass<T>& dq = w.dq;
    dq.resize(m.guide, g0 + S * B);
    const double gl = guide_logistic<T>(pg.out.data(), dq.out.data(), B, S * B);
    if (guide_loss) *guide_loss = gl;
    net_backward_data<T>(m.guide, g0 + S * B, xs(0), pg, dq, 0, nullptr);
    net_weight_grads<T>(m.guide, g0 + S * B, xs(0), pg, dq, *gguide);
  }
  if (states) std::copy(xs(1), xs(1) + S * BD, states);
  const std::array<double, 3> parts{nll / double(B), kl / double(B), shape / double(B)};
  if (!genc && !gdec) return parts;

  const T invB = T(1) / T(B);
  // d loss / d x_j from the shaping term, for every j at once (the guide's input gradient).
  std::vector<T>& d_shape = w.d_shape;
  if (m.shaping > T(0)) {
    dg.resize(m.guide, g0 + S * B);
    for (int64_t r = g0; r < g0 + S * B; ++r) {
      shaping_penalty<T>(pg.out[r], dg.out[r]);
      dg.out[r] *= m.shaping * invB;
    }
    d_shape.resize(S * BD);
    net_backward_data<T>(m.guide, S * B, xs(1), pg, dg, g0, d_shape.data());
  }
  // de, dd: the pre-activation gradients, stacked like pe and pd.
  de.resize(m.enc, S * B);
  dd.resize(m.dec, S * B);
  std::vector<T>&dx_next = w.dx_next, &dx_prev = w.dx_prev, &dz = w.dz;
  dx_next.assign(BD, T(0));
  dx_prev.resize(BD);
  dz.resize(B * Z);
  for (int64_t i = S - 1; i >= 0; --i) {
    const T wi = weights[i];
    // d loss / d o_i: the reconstruction term, and through x_{i+1} = sigmoid(o_i) the next
    // step's encoder (dx_next) and the shaping term.
    const T* t = m.walkback ? xs(0) : xs(i);
    const T* xn = xs(i + 1);
    const T* o = pd.out_rows(m.dec, i * B);
    T* d_o = dd.out_rows(m.dec, i * B);
    const T* dsh = m.shaping > T(0) ? d_shape.data() + i * BD : nullptr;
    pool().parallel_for(B, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        d_logits_row<T>(d_o + b * D, o + b * D, t + b * D, xn + b * D, dx_next.data() + b * D,
                        dsh ? dsh + b * D : nullptr, wi * invB, D);
    });
    net_backward_data<T>(m.dec, B, z.data() + i * B * Z, pd, dd, i * B, dz.data());
    const T* e = pe.out_rows(m.enc, i * B);
    T* d_e = de.out_rows(m.enc, i * B);
    const T* eps_i = eps.data() + i * B * Z;
    const T wk = wi * m.kld * invB;
    pool().parallel_for(B, [&](int64_t b0, int64_t b1) {
      for (int64_t b = b0; b < b1; ++b)
        for (int64_t q = 0; q < Z; ++q) {
          const T mu = e[b * 2 * Z + q], lv = e[b * 2 * Z + Z + q];
          const T dzq = dz[b * Z + q];
          T k_mu, k_lv;
          gauss_kl_std_normal<T>(mu, lv, k_mu, k_lv);
          d_e[b * 2 * Z + q] = dzq + wk * k_mu;
          d_e[b * 2 * Z + Z + q] = dzq * gauss_reparam_dlv<T>(lv, eps_i[b * Z + q]) + wk * k_lv;
        }
    });
    net_backward_data<T>(m.enc, B, xs(i), pe, de, i * B, i > 0 ? dx_prev.data() : nullptr);
    if (i > 0) {
      // Walkout's target at step i is x_i itself: d/dt [softplus(o) - t o] = -o.
      if (!m.walkback)
        pool().parallel_for(BD, [&](int64_t j0, int64_t j1) {
          for (int64_t j = j0; j < j1; ++j) dx_prev[j] -= wi * invB * o[j];
        }, 4096);
      std::swap(dx_next, dx_prev);
    }
  }
  // Every weight gradient in one product over the S B stacked rows.
  if (gdec) net_weight_grads<T>(m.dec, S * B, z.data(), pd, dd, *gdec);
  if (genc) net_weight_grads<T>(m.enc, S * B, xs(0), pe, de, *genc);
  return parts;
}

template <class T>
double shaped_guide(const ShapedModel<T>& m, int64_t B, const T* x, int64_t M, const T* states,
                    NetGrads<T>* g) {
  if (B < 1 || M < 1) throw std::invalid_argument("shaped guide: empty data or chain states");
  // Data and chain states as one (B + M) x D matrix: one pass each way.
  const int64_t D = m.D, rows = B + M;
  KeptWorkspace<GuideWork<T>> work;
  std::vector<T>& in = work->in;
  Pass<T>&p = work->p, &dp = work->dp;
  in.resize(rows * D);
  std::copy(x, x + B * D, in.begin());
  std::copy(states, states + M * D, in.begin() + B * D);
  p.resize(m.guide, rows);
  net_forward(m.guide, rows, in.data(), p, 0);
  dp.resize(m.guide, rows);
  const double loss = guide_logistic<T>(p.out.data(), dp.out.data(), B, M);
  if (g) {
    net_backward_data<T>(m.guide, rows, in.data(), p, dp, 0, nullptr);
    net_weight_grads<T>(m.guide, rows, in.data(), p, dp, *g);
  }
  return loss;
}

template <class T>
void shaped_sample(const ShapedModel<T>& model, int64_t n, int64_t steps, int64_t every,
                   uint64_t seed, uint32_t first_chain, T* out) {
  const int64_t D = model.D, Z = model.latent;
  // Both nets packed once per call (forward only) where that pays (8 chains or more, 2 steps or
  // more): faster, and each row's bits are then the same whatever the number of rows, so a run
  // split over such calls by first_chain gives the bits of one call. Through OpenBLAS (fewer
  // chains or one step) they may not: its Haswell kernels round a row differently by the rows
  // of its call (measured). A kept type of its own: the generator's packs hold both
  // orientations, and sharing them would repack into fresh memory at every switch.
  ShapedModel<T> m = model;
  KeptWorkspace<SampleNetsPacked> packed;
  if constexpr (std::is_same_v<T, float>) {
    if (packed_gemm_pays(n, steps)) {
      pack_net(m.enc, packed->enc_body, packed->enc_head, false);
      pack_net(m.dec, packed->dec_body, packed->dec_head, false);
    }
  }
  const StreamKey key = stream_key(seed);
  std::vector<T> z(n * Z), x(n * D);
  Pass<T> pe, pd;
  pe.resize(m.enc, n);
  pd.resize(m.dec, n);
  for (int64_t i = 0; i < steps; ++i) {
    if (i > 0) net_forward(m.enc, n, x.data(), pe, 0);
    pool().parallel_for(n, [&](int64_t b0, int64_t b1) {
      std::vector<float> draws((b1 - b0) * Z);
      normal_rows(key, first_chain + uint32_t(b0), b1 - b0, uint32_t(i),
                  i == 0 ? kStreamInit : kStreamHidden, Z, draws.data());
      for (int64_t b = b0; b < b1; ++b) {
        const float* nrm = draws.data() + (b - b0) * Z;
        for (int64_t k = 0; k < Z; ++k)
          z[b * Z + k] = i == 0 ? T(nrm[k])
                                : gauss_reparam<T>(pe.out[b * 2 * Z + k],
                                                   pe.out[b * 2 * Z + Z + k], T(nrm[k]));
      }
    });
    net_forward(m.dec, n, z.data(), pd, 0);
    for (int64_t j = 0; j < n * D; ++j) x[j] = sigmoid<T>(pd.out[j]);
    if (every > 0 && (i + 1) % every == 0)
      std::copy(x.begin(), x.end(), out + ((i + 1) / every - 1) * n * D);
  }
  if (every == 0) std::copy(x.begin(), x.end(), out);
}

#define WB_SHAPED(T)                                                                         \
  template std::array<double, 3> shaped_generator<T>(const ShapedModel<T>&, const ShapedArgs&, \
                                                     const T*, NetGrads<T>*, NetGrads<T>*,   \
                                                     T*, NetGrads<T>*, double*);             \
  template double shaped_guide<T>(const ShapedModel<T>&, int64_t, const T*, int64_t,          \
                                  const T*, NetGrads<T>*);                                   \
  template void shaped_sample<T>(const ShapedModel<T>&, int64_t, int64_t, int64_t, uint64_t,  \
                                 uint32_t, T*);
WB_SHAPED(float)
WB_SHAPED(double)
#undef WB_SHAPED

}  // namespace wb
