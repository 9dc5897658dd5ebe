// walkback's own single-precision GEMM for products by weights that stay fixed over many calls
// (a chain's W over all its steps). The weights are packed once into panels of 32 columns; the
// other operand (the chains' states, their hidden units) is read where it lies, so no call
// packs anything. OpenBLAS packs both operands in every call, and walkback's column slices each
// pack all of A again. Measured (benchmarks/RESULTS.md): a whole product about as fast as a
// whole OpenBLAS call, a chain step at 16 chains 2-3x faster, at 256-1024 chains 0.9-1.4x.
// AVX-512 only, chosen at run time; elsewhere `packed_gemm_supported()` is false and callers
// use the BLAS.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace wb {

// op(B) (k x n) in panels of kPanel columns: panel q holds, for each of the k rows, the kPanel
// values of columns q kPanel ..., zero past n. 64-byte aligned, so each row of a panel is one
// AVX-512 load pair.
class PackedWeights {
 public:
  static constexpr int64_t kPanel = 32;

  // op(B) = B (k x n, row stride ldb) or, when trans, B^T with B n x k (row stride ldb).
  // Parallel over panels on walkback's pool.
  void pack(const float* b, int64_t ldb, bool trans, int64_t k, int64_t n);
  int64_t k() const { return k_; }
  int64_t n() const { return n_; }
  bool empty() const { return n_ == 0; }
  const float* panel(int64_t q) const { return data_.get() + q * k_ * kPanel; }
  size_t bytes() const { return static_cast<size_t>(capacity_) * sizeof(float); }
  // Marks it empty (callers then take the BLAS path); the memory is kept for the next pack.
  void clear() { k_ = n_ = 0; }

 private:
  struct Free {
    void operator()(float* p) const { std::free(p); }
  };
  std::unique_ptr<float[], Free> data_;
  int64_t k_ = 0, n_ = 0, capacity_ = 0;
};

// The two orientations of a layer's weights, kept by a thread between calls
// (KeptWorkspace<PackedLayer>): packing into fresh memory would page-fault it in every batch.
struct PackedLayer {
  PackedWeights forward, backward;
  size_t bytes() const { return forward.bytes() + backward.bytes(); }
};

// Whether this machine runs packed_gemm (AVX-512F, checked when the library loads), and the
// environment does not switch it off (WALKBACK_PACKED_GEMM=0, for A/B timings).
bool packed_gemm_supported();
// Switches packed_gemm off (or back on, where supported) for the whole process: A/B timings in
// one process, and tests of both paths. Returns packed_gemm_supported().
bool set_packed_gemm(bool on);

// C[:, j0:j1] = A op(B)[:, j0:j1], or += when accumulate. A is m x k row-major (lda); C is
// row-major (ldc); j0 is a multiple of kPanel; one thread (callers split the columns).
void packed_gemm(int64_t m, const float* a, int64_t lda, const PackedWeights& b, float* c,
                 int64_t ldc, int64_t j0, int64_t j1, bool accumulate);

}  // namespace wb
