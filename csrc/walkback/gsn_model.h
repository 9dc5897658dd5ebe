// A deep Generative Stochastic Network (Bengio et al. 2014): a visible layer made of segments
// plus L hidden layers. Layer l (1..L) is computed from its neighbours,
//   a_l = h_{l-1} W_l + h_{l+1} D_{l+1} + b_l,   D_l = W_l^T (tied) or U_l (untied),
// with Gaussian noise before and after the activation; the visible layer is
//   o = h_1 D_1 + b_0, reconstructed per segment (Bernoulli, Gaussian, categorical).
// One chain step updates the odd layers (from the even ones of the previous step; layer 1 reads
// the corrupted visible state), then the even ones, then samples the visible layer.
#pragma once
#include <cstdint>
#include <vector>

#include "walkback/common.h"
#include "walkback/packed_gemm.h"

namespace wb {

// A contiguous run of visible units with its own reconstruction, corruption and loss weight.
struct VisibleSegment {
  int64_t offset = 0, size = 0;
  Reconstruction reconstruction = Reconstruction::Bernoulli;
  double sigma = 1;  // Gaussian reconstruction's standard deviation
  Corruption corruption = Corruption::None;
  double corruption_param = 0;
  double weight = 1;  // the segment's NLL is multiplied by this in the walk-back loss
};

template <class T>
struct GsnModel {
  int L = 1;
  std::vector<int64_t> n;       // n[0] = D (visible), n[l] = units of hidden layer l
  std::vector<const T*> W;      // W[l], l = 1..L: (n[l-1], n[l]); W[0] unused
  std::vector<const T*> U;      // U[l]: (n[l], n[l-1]) when untied, else nullptr
  std::vector<const T*> b;      // b[l], l = 0..L: (n[l])
  Activation activation = Activation::Tanh;
  T noise_pre = 0, noise_post = 0;  // standard deviations of the hidden noise
  bool noiseless_h1 = false;        // no hidden noise on layer 1 (the original code's option)
  std::vector<VisibleSegment> segments;
  // When set (float, AVX-512 or AVX2; see pack_gsn_weights): W_l packed as up[l] and D_l as down[l],
  // for walkback's own GEMM. Empty: every product goes to the BLAS.
  std::vector<const PackedWeights*> up, down;

  int64_t D() const { return n[0]; }
  bool noisy(int l) const { return !(l == 1 && noiseless_h1) && (noise_pre > 0 || noise_post > 0); }
};

// A GSN's weights in both orientations, kept by a thread between calls.
struct GsnPacked {
  std::vector<PackedWeights> up, down;
  size_t bytes() const {
    size_t b = 0;
    for (const auto& p : up) b += p.bytes();
    for (const auto& p : down) b += p.bytes();
    return b;
  }
};

// Packs every W_l (up) and D_l (down) of m into `store` and points m.up / m.down at them.
void pack_gsn_weights(GsnModel<float>& m, GsnPacked& store);

// Gradients named like the parameters; U entries are used only when untied.
template <class T>
struct GsnGrads {
  std::vector<T*> W, U, b;
};

// The hidden-noise streams of layer l: pre-activation and post-activation normals.
inline uint32_t hidden_stream_pre(int l) { return kStreamHidden + 2u * static_cast<uint32_t>(l - 1); }
inline uint32_t hidden_stream_post(int l) { return hidden_stream_pre(l) + 1u; }

}  // namespace wb
