// walkback's own single-precision GEMM for products by weights that stay fixed over many calls
// (a chain's W over all its steps). The weights are packed once into panels of 32 columns; the
// other operand (the chains' states, their hidden units) is read where it lies, so no call
// packs anything. OpenBLAS packs both operands in every call, and walkback's column slices each
// pack all of A again. Measured (benchmarks/RESULTS.md): a whole product about as fast as a
// whole OpenBLAS call, a chain step at 16 chains 2-3x faster, at 256-1024 chains 0.9-1.4x.
// AVX-512 or AVX2, chosen at run time (the two give the same bits); elsewhere
// `packed_gemm_supported()` is false and callers use the BLAS.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <memory>

namespace wb {

// The instruction set of packed_gemm's kernel (see packed_gemm_isa).
enum class PackedIsa { None = 0, Avx2 = 1, Avx512 = 2 };

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
  // The kernel that multiplies by this pack: the process's choice when it was packed (the
  // processor's best if packed_gemm was switched off then).
  PackedIsa isa() const { return isa_; }
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
  PackedIsa isa_ = PackedIsa::None;
};

// The two orientations of a layer's weights, kept by a thread between calls
// (KeptWorkspace<PackedLayer>): packing into fresh memory would page-fault it in every batch.
struct PackedLayer {
  PackedWeights forward, backward;
  size_t bytes() const { return forward.bytes() + backward.bytes(); }
};

// The instruction set new packs use, chosen when the library loads: the widest of AVX-512F
// and AVX2 + FMA the processor has. WALKBACK_PACKED_GEMM=0 switches it off (the BLAS then
// does every product), =avx2 picks AVX2 where AVX-512 is there too (A/B timings).
PackedIsa packed_gemm_isa();
bool packed_gemm_supported();  // packed_gemm_isa() != None
// Switches packed_gemm off, or back on at the instruction set chosen at load, for the whole
// process (A/B timings in one process, tests of both paths). Returns packed_gemm_supported().
bool set_packed_gemm(bool on);
// Whether a call that multiplies `rows` rows by the same weights in each of `steps` steps
// should pack them: packing costs about one pass over the weights. Measured in chain steps
// (benchmarks/RESULTS.md): from 8 rows and 2 steps (one step alone gains nothing, and its
// pack slowed a chain step called between NumPy calls; from 2 steps even 8 rows gain); with
// the AVX2 kernel only up to 256 rows (at 1024 it was 8% slower than OpenBLAS's AVX2
// kernels). A rule on rows alone and steps alone also keeps batch splits on one kernel.
bool packed_gemm_pays(int64_t rows, int64_t steps);
// packed_gemm_pays for a chain, whose every step multiplies by the same pack: from 2 rows
// (measured, DAE 784 x 1000, benchmarks/RESULTS.md: OpenBLAS repacks W in every call, and at
// 2-4 chains a step took 3-4x as long as with the pack; calls of 2 steps too gained). Training
// keeps packed_gemm_pays: at 4 rows a batch fit's time was bimodal over processes (0.41-0.45
// or 0.94-1.10 ms a batch) with either rule, so no gain was seen there.
bool packed_chain_pays(int64_t rows, int64_t steps);
// Whether products that OpenBLAS's own AVX-512 kernels do about as fast as packed_gemm take
// packed_gemm: hundreds of rows by weights used a few times in a call (the sequence GSN's
// convolutions, DAE walk-back training). There OpenBLAS's AVX2 kernels were 15-18% slower
// (benchmarks/RESULTS.md), so by default: where packed_gemm's kernel is wider than the BLAS's,
// AVX-512 here while OpenBLAS runs AVX2 kernels (OPENBLAS_CORETYPE=Haswell on an AVX-512
// processor, say). Never without packed_gemm.
bool prefer_packed_gemm();
// Overrides that choice for the whole process (tests of both paths, A/B timings): 1 on where
// packed_gemm is supported, 0 off, -1 back to the default.
void set_prefer_packed_gemm(int mode);

// How many weight matrices PackedWeights::pack has packed, and how many packed_gemm calls (each
// a column slice of one product) ran, in this process: tests check with them that a call took
// the packed path.
int64_t packed_weights_count();
int64_t packed_products_count();

// Runs packed_gemm with `isa` from now on, if the processor has it (tests of each kernel);
// false, and nothing changed, where it does not.
bool set_packed_gemm_isa(PackedIsa isa);

// A callback on a block of packed_gemm's output, rows [r0, r1) and columns [c0, c1), once it
// is final: a function pointer and its context (no allocation, unlike std::function).
struct BlockDone {
  void (*fn)(void* ctx, int64_t r0, int64_t r1, int64_t c0, int64_t c1) = nullptr;
  void* ctx = nullptr;
  void operator()(int64_t r0, int64_t r1, int64_t c0, int64_t c1) const {
    fn(ctx, r0, r1, c0, c1);
  }
  // Wraps a callable f(r0, r1, c0, c1), which must outlive the BlockDone.
  template <class F>
  static BlockDone of(F& f) {
    return {[](void* p, int64_t r0, int64_t r1, int64_t c0, int64_t c1) {
              (*static_cast<F*>(p))(r0, r1, c0, c1);
            },
            &f};
  }
};

// C[:, j0:j1] = A op(B)[:, j0:j1], or += when accumulate. A is m x k row-major (lda); C is
// row-major (ldc); j0 is a multiple of kPanel; one thread (callers split the columns).
// With `done`, done(r0, r1, c0, c1) runs on blocks that tile C[:, j0:j1] as soon as each is
// final (a few rows by a few panels, while the block is in L1, where k fits one block of the
// kernel; else once, on the whole slice, at the end): bias + activation, sampling. The
// product's bits are the same either way; column bounds inside the slice are multiples of
// kPanel.
void packed_gemm(int64_t m, const float* a, int64_t lda, const PackedWeights& b, float* c,
                 int64_t ldc, int64_t j0, int64_t j1, bool accumulate,
                 const BlockDone* done = nullptr);

// C[:, j0:j1] = A op(B)[:, j0:j1], or += when accumulate, with A given as its transpose: `at`
// is k x m row-major (ldat), A = at^T. For weight gradients X^T dY, whose rows are the
// batch's: no transposed copy of X is made (the kernel broadcasts A's elements, so either
// layout reads as well). Each element is the same chain of FMAs as packed_gemm's. No callback;
// one thread.
void packed_gemm_at(int64_t m, const float* at, int64_t ldat, const PackedWeights& b, float* c,
                    int64_t ldc, int64_t j0, int64_t j1, bool accumulate);

// C[:, j0:j1] = A op(B)[k0:k1, j0:j1], or += when accumulate: the product over rows k0 .. k1 - 1
// of the pack only. A is m x (k1 - k0) row-major (lda), its column 0 being the pack's row k0.
// For a product whose other rows would multiply zeros in A (which would still turn an
// infinite weight into NaN). No callback; one thread, as packed_gemm.
void packed_gemm_k(int64_t m, const float* a, int64_t lda, const PackedWeights& b, int64_t k0,
                   int64_t k1, float* c, int64_t ldc, int64_t j0, int64_t j1, bool accumulate);

}  // namespace wb
