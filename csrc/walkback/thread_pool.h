// The one thread pool of walkback: our loops and our column-sliced BLAS calls (parallel_gemm.h,
// OpenBLAS itself single-threaded) run on it. Idle workers spin only briefly (WALKBACK_SPIN_US,
// default 50 us) and then sleep on a futex, so a NumPy call right after a walkback call finds
// the cores free (OpenBLAS's own workers spin for about 0.1 s).
#pragma once
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

namespace wb {

class ThreadPool {
 public:
  using JobFn = void (*)(void* ctx, int job);

  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Runs fn(ctx, j) for j in [0, jobs), each job on its own thread; jobs <= size(). Called
  // from inside a job, it runs the jobs one after another on the calling thread. An exception
  // thrown by a job is rethrown here once every job has finished (the first one, if several).
  void run(int jobs, JobFn fn, void* ctx);

  // Calls f(begin, end) on up to size() contiguous slices of [0, n).
  template <class F>
  void parallel_for(int64_t n, F&& f, int64_t min_per_job = 1) {
    if (n <= 0) return;
    int64_t jobs = n / (min_per_job > 0 ? min_per_job : 1);
    if (jobs > size_) jobs = size_;
    if (jobs < 1) jobs = 1;
    struct Ctx {
      F* f;
      int64_t n, jobs;
    } ctx{&f, n, jobs};
    run(static_cast<int>(jobs),
        [](void* p, int j) {
          auto* c = static_cast<Ctx*>(p);
          const int64_t b = c->n * j / c->jobs, e = c->n * (j + 1) / c->jobs;
          (*c->f)(b, e);
        },
        &ctx);
  }

 private:
  void worker_loop(int index);
  void record_error();

  int size_;
  std::vector<std::thread> workers_;
  std::mutex run_mutex_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> remaining_{0};
  std::atomic<bool> stop_{false};
  JobFn fn_ = nullptr;
  void* ctx_ = nullptr;
  int jobs_ = 0;
  int64_t spin_ns_;
  std::mutex error_mutex_;
  std::exception_ptr error_;
};

// The most threads a pool may have (set_num_threads, WALKBACK_NUM_THREADS).
constexpr int kMaxThreads = 1024;

// How many threads the slicing of a BLAS product assumes (parallel_gemm.h). OpenBLAS picks
// its kernel by the shape of each call, and its kernels round differently; so in reproducible
// mode (the default) a product is cut as for kSliceThreads threads whatever the pool's size:
// every thread count makes the same calls and gets the same bits. Off, the cut follows the
// pool's size (more slices on many cores; results can then move in the last bits).
constexpr int kSliceThreads = 2;
int slicing_threads();
void set_reproducible(bool on);
bool reproducible();

// The process-wide pool, created on first use with default_threads() threads.
ThreadPool& pool();
// Replaces the pool with one of n threads (n >= 1); not while a run is in progress.
void set_num_threads(int n);
int num_threads();
// The CPUs this process may run on (sched_getaffinity), or WALKBACK_NUM_THREADS if set
// (std::invalid_argument unless it is an integer in [1, kMaxThreads]).
int default_threads();

}  // namespace wb
