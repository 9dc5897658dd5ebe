// ABC-shaped chains (Bachman & Precup 2015, "Variational Generative Stochastic Networks with
// Collaborative Shaping"): a variational autoencoder unrolled into a chain, and a guide that
// shapes it. For a batch of B rows and `steps` steps:
//   x_0 = data; (mu_i, logvar_i) = enc(x_i); z_i = mu_i + exp(logvar_i / 2) eps_i;
//   o_i = dec(z_i) (logits); x_{i+1} = sigmoid(o_i) (the decoder's mean).
// The generator's loss, per row: sum_i decay^i [NLL(t_i | o_i) + kld KL(q(z | x_i) || N(0, I))]
// with t_i = x_0 ("walkback") or x_i ("walkout"; differentiated too), plus the shaping term
// shaping * sum_{j = 1..steps} [relu(-D(x_j)) + relu(-D(x_j))^2] / 2, where D is the guide,
// a classifier of data (positive) against chain states; the guide's own loss is the logistic
// softplus(-D(data)) + softplus(D(chain states)), its rows averaged per kind. Gradients flow
// through every step (x_{i+1} is differentiable in o_i); the guide's parameters get only its
// own loss. Each network is a stack of dense layers with one activation and a linear head.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "walkback/dense_mlp.h"

namespace wb {

template <class T>
struct Net {
  std::vector<DenseLayer<T>> body;  // hidden layers, `act` on each
  DenseLayer<T> head;               // linear
  Activation act = Activation::Relu;
};

// Gradients of a Net, layer by layer, the head last; overwritten.
template <class T>
struct NetGrads {
  std::vector<T*> W, b;
};

template <class T>
struct ShapedModel {
  Net<T> enc, dec, guide;  // enc head: 2 * latent (mu, then logvar); dec head: D; guide: 1
  int64_t D = 0, latent = 0;
  T kld = T(1), decay = T(1), shaping = T(0);
  bool walkback = true;  // targets x_0 (true) or x_i (false, "walkout")
};

struct ShapedArgs {
  int64_t B = 0, steps = 1;
  uint64_t seed = 0;
  uint32_t first_chain = 0;
};

// The generator's loss parts per row (NLL, KL, shaping; each already weighted, summed over
// steps, averaged over rows), gradients for enc and dec when given, and the
// chain states x_1 .. x_steps into `states` (steps x B x D) when given. With gguide, also the
// guide's own step on x and these states: its loss into *guide_loss (when given) and its
// gradients, as shaped_guide gives them, with the guide's forward pass shared with the
// shaping term (one training step of both networks, as fit takes it).
template <class T>
std::array<double, 3> shaped_generator(const ShapedModel<T>& m, const ShapedArgs& a, const T* x,
                                       NetGrads<T>* genc, NetGrads<T>* gdec, T* states,
                                       NetGrads<T>* gguide = nullptr,
                                       double* guide_loss = nullptr);

// The guide's loss on B data rows and M chain-state rows, gradients when given.
template <class T>
double shaped_guide(const ShapedModel<T>& m, int64_t B, const T* x, int64_t M, const T* states,
                    NetGrads<T>* g);

// n chains started from prior draws z ~ N(0, I), x_1 = dec(z) (the decoder's means), then
// steps - 1 more steps. every > 0: out (steps / every x n x D) gets x_every, x_2every, ...;
// every = 0: out (n x D) gets x_steps alone.
template <class T>
void shaped_sample(const ShapedModel<T>& m, int64_t n, int64_t steps, int64_t every,
                   uint64_t seed, uint32_t first_chain, T* out);

}  // namespace wb
