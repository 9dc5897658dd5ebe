#include "walkback/dense_mlp.h"

#include <algorithm>
#include <type_traits>

#include "walkback/blas.h"
#include "walkback/dispatch.h"
#include "walkback/parallel_gemm.h"
#include "walkback/row_kernels.h"
#include "walkback/workspace.h"

namespace wb {

constexpr int64_t kAlign = 16;

template <class T>
void column_sums(const T* a, int64_t rows, int64_t n, int64_t ld, T* sum) {
  parallel_columns(n, kAlign, 256, 1, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) sum[j] = T(0);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = j0; j < j1; ++j) sum[j] += a[r * ld + j];
  }, false);
}

namespace {
template <class T>
struct PingPong {
  std::vector<T> buf;
  size_t bytes() const { return total_bytes(buf); }
};

// gW (+)= in^T d, gb (+)= the column sums of d, over `rows` rows.
template <class T>
void layer_weight_grad(const DenseLayer<T>& L, int64_t rows, const T* in, const T* d, T* gW,
                       T* gb, bool accumulate) {
  gemm_tn_accumulate<T>(rows, L.in, L.out, in, L.in, d, L.out, gW, L.out,
                        accumulate ? T(1) : T(0));
  if (accumulate) {
    std::vector<T> sums(L.out);
    column_sums<T>(d, rows, L.out, L.out, sums.data());
    for (int64_t j = 0; j < L.out; ++j) gb[j] += sums[j];
  } else {
    column_sums<T>(d, rows, L.out, L.out, gb);
  }
}
}  // namespace

template <class T>
void mlp_weight_grads(const std::vector<DenseLayer<T>>& layers, int64_t rows, const T* x,
                      const std::vector<const T*>& acts, const std::vector<const T*>& deltas,
                      const std::vector<T*>& gW, const std::vector<T*>& gb, bool accumulate) {
  for (size_t l = 0; l < layers.size(); ++l)
    layer_weight_grad<T>(layers[l], rows, l > 0 ? acts[l - 1] : x, deltas[l], gW[l], gb[l],
                         accumulate);
}

void pack_layers(std::vector<DenseLayer<float>>& layers, PackedStack& store,
                 bool transposed_too) {
  const size_t per = transposed_too ? 2 : 1;
  store.layers.resize(per * layers.size());
  for (size_t l = 0; l < layers.size(); ++l) {
    DenseLayer<float>& L = layers[l];
    store.layers[per * l].pack(L.W, L.out, false, L.in, L.out);
    L.packed = &store.layers[per * l];
    if (!transposed_too) continue;
    store.layers[per * l + 1].pack(L.W, L.out, true, L.out, L.in);
    L.packed_t = &store.layers[per * l + 1];
  }
}

template <class T>
void mlp_forward(const std::vector<DenseLayer<T>>& layers, Activation act, int64_t B, const T* x,
                 const std::vector<T*>& acts) {
  with_activation(act, [&](auto a) {
    constexpr Activation A = decltype(a)::value;
    const T* in = x;
    for (size_t l = 0; l < layers.size(); ++l) {
      const DenseLayer<T>& L = layers[l];
      T* out = acts[l];
      bool packed = false;
      if constexpr (std::is_same_v<T, float>) packed = L.packed && !L.packed->empty() && B > 1;
      if (packed && B >= L.out) {
        // As below, each thread on its rows, with nothing packed per call.
        pool().parallel_for(B, [&](int64_t r0, int64_t r1) {
          if constexpr (std::is_same_v<T, float>) {
            T* o = out + r0 * L.out;
            auto block = [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
              for (int64_t r = i0; r < i1; ++r)
                bias_activate<T, A>(o + r * L.out + j0, L.b + j0, j1 - j0);
            };
            const BlockDone done = BlockDone::of(block);
            packed_gemm(r1 - r0, in + r0 * L.in, L.in, *L.packed, o, L.out, 0, L.out, false,
                        &done);
          }
        }, 16);
      } else if (packed) {
        if constexpr (std::is_same_v<T, float>)
          packed_gemm_columns(B, in, L.in, *L.packed, out, L.out,
                              [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
                                for (int64_t r = r0; r < r1; ++r)
                                  bias_activate<T, A>(out + r * L.out + j0, L.b + j0, j1 - j0);
                              });
      } else if (B >= L.out) {
        // At least as many rows as outputs: row slices, each thread packing only its rows.
        parallel_rows(B, 16, [&](int64_t r0, int64_t r1) {
          blas::gemm(false, false, static_cast<int>(r1 - r0), static_cast<int>(L.out),
                     static_cast<int>(L.in), T(1), in + r0 * L.in, static_cast<int>(L.in), L.W,
                     static_cast<int>(L.out), T(0), out + r0 * L.out, static_cast<int>(L.out));
          for (int64_t r = r0; r < r1; ++r) bias_activate<T, A>(out + r * L.out, L.b, L.out);
        });
      } else {
        gemm_columns<T>(false, B, L.out, L.in, in, L.in, L.W, L.out, out, L.out, kAlign,
                        [&](int64_t j0, int64_t j1) {
                          for (int64_t r = 0; r < B; ++r)
                            bias_activate<T, A>(out + r * L.out + j0, L.b + j0, j1 - j0);
                        });
      }
      in = out;
    }
  });
}

template <class T>
void mlp_backward(const std::vector<DenseLayer<T>>& layers, Activation act, int64_t B,
                  const T* x, const std::vector<T*>& acts, T* d_top, const std::vector<T*>& gW,
                  const std::vector<T*>& gb, T* d_x, bool accumulate,
                  const std::vector<T*>& deltas) {
  const int64_t nl = static_cast<int64_t>(layers.size());
  int64_t widest = 0;
  for (const auto& L : layers) widest = std::max(widest, L.in);
  // Ping-pong buffers for the layers' gradients, unless the caller keeps them (deltas); kept
  // per thread between calls (workspace.h).
  KeptWorkspace<PingPong<T>> work;
  std::vector<T>& buf = work->buf;
  if (nl > 1 && deltas.empty() && buf.size() < size_t(2 * B * widest)) buf.resize(2 * B * widest);
  with_activation(act, [&](auto a) {
    constexpr Activation A = decltype(a)::value;
    // d_top holds d loss / d output of the top layer; make it d / d pre-activation.
    const DenseLayer<T>& top = layers.back();
    pool().parallel_for(B, [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        mul_activation_grad<T, A>(d_top + r * top.out, acts.back() + r * top.out, top.out);
    });
    T* d = d_top;
    for (int64_t l = nl - 1; l >= 0; --l) {
      const DenseLayer<T>& L = layers[l];
      const T* in = l > 0 ? acts[l - 1] : x;
      if (gW[l]) layer_weight_grad<T>(L, B, in, d, gW[l], gb[l], accumulate);
      if (l == 0 && !d_x) break;
      // d (B x in) = d W^T, times act'(input) unless the input is x.
      T* next = l > 0 ? (deltas.empty() ? buf.data() + (l % 2) * B * widest : deltas[l - 1]) : d_x;
      weight_gemm_columns<T>(L.packed_t, true, B, L.in, L.out, d, L.out, L.W, L.out, next, L.in,
                             kAlign, [&](int64_t r0, int64_t r1, int64_t j0, int64_t j1) {
                        if (l == 0) return;
                        for (int64_t r = r0; r < r1; ++r)
                          mul_activation_grad<T, A>(next + r * L.in + j0, in + r * L.in + j0,
                                                    j1 - j0);
                      });
      d = next;
    }
  });
}

#define WB_INSTANTIATE(T)                                                                     \
  template void column_sums<T>(const T*, int64_t, int64_t, int64_t, T*);                      \
  template void mlp_forward<T>(const std::vector<DenseLayer<T>>&, Activation, int64_t,        \
                               const T*, const std::vector<T*>&);                             \
  template void mlp_backward<T>(const std::vector<DenseLayer<T>>&, Activation, int64_t,       \
                                const T*, const std::vector<T*>&, T*, const std::vector<T*>&, \
                                const std::vector<T*>&, T*, bool, const std::vector<T*>&); \
  template void mlp_weight_grads<T>(const std::vector<DenseLayer<T>>&, int64_t, const T*,      \
                                    const std::vector<const T*>&, const std::vector<const T*>&, \
                                    const std::vector<T*>&, const std::vector<T*>&, bool);
WB_INSTANTIATE(float)
WB_INSTANTIATE(double)
#undef WB_INSTANTIATE

}  // namespace wb
