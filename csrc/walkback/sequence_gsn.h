// The convolutional discriminant GSN for sequences (Zhou & Troyanskaya 2014; the book's
// 20.12.1): the chain runs over the label sequence and two convolutional hidden layers, the
// input sequence only conditions it. One step, for a batch of N sequences of L positions:
//   in  = [x, C(Y)]                       x clamped, C: salt-and-pepper on the one-hot labels
//   h1  = tanh(conv1(in) + b1 + up(conv2^T(h2')) + s n) + s n'   (h2' the previous step's h2)
//   h2  = tanh(conv2(pool(h1)) + b2 + s n) + s n'
//   p(Y) = softmax(conv1_Y^T(h1) + c)     tied: the label rows of conv1, transposed
//   Y'  ~ p(Y), which feeds the next step
// pool is a mean over windows of `pool` positions and up its adjoint, so the top-down path is
// the exact transpose of the bottom-up one. Positions past a sequence's length are zero in
// every layer.
#pragma once
#include <cstdint>

namespace wb {

template <class T>
struct SeqGsnModel {
  const T *W1 = nullptr, *b1 = nullptr;  // (width * (Cin + K), C1), (C1)
  const T *W2 = nullptr, *b2 = nullptr;  // (width * C1, C2), (C2)
  const T* c = nullptr;                  // (K) label bias
  int64_t Cin = 0, K = 0, C1 = 0, C2 = 0, width = 5, pool = 5;
  T noise_pre = T(2), noise_post = T(2);  // hidden noise, before and after tanh
  T corruption = T(0.2);                  // salt-and-pepper probability on label units
};

template <class T>
struct SeqGsnGrads {
  T *W1 = nullptr, *b1 = nullptr, *W2 = nullptr, *b2 = nullptr, *c = nullptr;
};

struct SeqGsnArgs {
  int64_t N = 0, L = 0;
  const int32_t* lengths = nullptr;  // (N) valid positions, <= L
  int64_t steps = 1;
  uint64_t seed = 0;
  uint32_t first_chain = 0;  // the random stream's index of sequence 0
  bool noise = true;         // hidden noise and label corruption (off: a deterministic pass)
};

// Walk-back training: the chain starts from the true labels y (N, L; past a length ignored),
// runs `steps` steps, and the loss is the NLL of y under every step's p(Y), summed over steps
// and averaged over the valid positions of the batch. Gradients (when g is given) are
// back-propagated through the hidden states of all steps; the label samples are constants.
template <class T>
double seq_gsn_walkback(const SeqGsnModel<T>& m, const SeqGsnArgs& a, const T* x,
                        const int32_t* y, SeqGsnGrads<T>* g);

// Prediction: the chain from the uninformative labels (1/K everywhere) for `steps` steps;
// probs (N, L, K) gets p(Y) averaged over the steps after `burn_in` (zero past a length).
template <class T>
void seq_gsn_predict(const SeqGsnModel<T>& m, const SeqGsnArgs& a, const T* x, int64_t burn_in,
                     T* probs);

}  // namespace wb
