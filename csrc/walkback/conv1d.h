// 1-D convolutions along sequences (the building block of the sequence GSN, issue 8): batches
// of N sequences of L positions, rows are positions, "same" zero padding, odd width, stride 1.
// Each sequence has its own length: positions past it read as zeros and are written as zeros,
// so padding never leaks into a shorter sequence. Weights W are (width * C, F): row k * C + c
// is tap k (position l + k - width / 2) of input channel c. The convolution is im2col + GEMM:
// the BLAS in the slices of parallel_gemm.h, or walkback's packed kernel for weights packed
// once for many calls.
#pragma once
#include <cstdint>

#include "walkback/packed_gemm.h"

namespace wb {

struct SeqShape {
  int64_t N = 0, L = 0;
  const int32_t* lengths = nullptr;  // per sequence, <= L; nullptr: every sequence has L
  int64_t len(int64_t n) const { return lengths ? lengths[n] : L; }
  int64_t rows() const { return N * L; }
};

struct Conv1d {
  int64_t C = 0, F = 0, width = 1;  // input channels, output channels, taps (odd)
  int64_t taps() const { return width * C; }
};

// cols (N * L, width * C): row (n, l) holds x[n, l + k - width / 2, :] for each tap k, zero
// outside [0, len(n)); rows l >= len(n) are zero. x: (N, L, C) with leading dimension ldx per
// position (ldx >= C: x may be a slice of wider rows).
template <class T>
void im2col(const SeqShape& s, const Conv1d& c, const T* x, int64_t ldx, T* cols);

// out[n, l + k - width / 2, :] += g[(n, l), k * C : (k + 1) * C] for l < len(n) and targets
// inside [0, len(n)): the adjoint of im2col. out has leading dimension ldo.
template <class T>
void col2im_add(const SeqShape& s, const Conv1d& c, const T* g, T* out, int64_t ldo);

// y (N, L, F) = conv(x) + b, zero at l >= len(n). `cols` (N * L, width * C) is filled with
// im2col(x), which conv1d_param_grad reads back. `packed`, when not empty, holds W packed
// (PackedWeights::pack(W, F, false, width * C, F); float only): walkback's kernel then
// multiplies, for weights used by many calls.
template <class T>
void conv1d_forward(const SeqShape& s, const Conv1d& c, const T* x, int64_t ldx, const T* W,
                    const T* b, T* cols, T* y, const PackedWeights* packed = nullptr);

// out (N, L, C; leading dimension ldo) += conv^T(h): the adjoint of the forward's linear part
// (the input gradient, and tied "transposed" decoding). work: (N * L, width * C). `packed`,
// when not empty, holds W^T packed (PackedWeights::pack(W, F, true, F, width * C); float only).
template <class T>
void conv1d_transpose_add(const SeqShape& s, const Conv1d& c, const T* h, const T* W, T* work,
                          T* out, int64_t ldo, const PackedWeights* packed = nullptr);

// dW (width * C, F) += cols^T dy and db (F) += column sums of dy (db may be nullptr).
template <class T>
void conv1d_param_grad(const SeqShape& s, const Conv1d& c, const T* cols, const T* dy, T* dW,
                       T* db);

}  // namespace wb
