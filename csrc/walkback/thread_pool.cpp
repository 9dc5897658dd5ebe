#include "walkback/thread_pool.h"

#include <sched.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define WB_CPU_RELAX() _mm_pause()
#else
#define WB_CPU_RELAX() ((void)0)
#endif

namespace wb {
namespace {

thread_local bool t_in_job = false;

int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// Waits until pred() holds: spins for spin_ns, then sleeps on the atomic (futex).
template <class A, class V, class Pred>
void spin_then_wait(A& atom, Pred pred, V (*load)(A&), int64_t spin_ns) {
  const int64_t start = now_ns();
  int i = 0;
  while (!pred()) {
    WB_CPU_RELAX();
    if ((++i & 63) == 0 && now_ns() - start > spin_ns) {
      V seen = load(atom);
      while (!pred()) {
        atom.wait(seen, std::memory_order_acquire);
        seen = load(atom);
      }
      return;
    }
  }
}

std::unique_ptr<ThreadPool> g_pool;
std::mutex g_pool_mutex;

}  // namespace

ThreadPool::ThreadPool(int threads) : size_(threads < 1 ? 1 : threads) {
  const char* spin = std::getenv("WALKBACK_SPIN_US");
  spin_ns_ = (spin ? std::atoll(spin) : 50) * 1000;
  workers_.reserve(size_ - 1);
  for (int i = 1; i < size_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  // Not a load: a run may bump the generation before this thread first gets here.
  uint64_t seen = 0;
  for (;;) {
    spin_then_wait(
        generation_, [&] { return generation_.load(std::memory_order_acquire) != seen; },
        +[](std::atomic<uint64_t>& a) { return a.load(std::memory_order_acquire); }, spin_ns_);
    seen = generation_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    if (index < jobs_) {
      t_in_job = true;
      try {
        fn_(ctx_, index);
      } catch (...) {
        record_error();
      }
      t_in_job = false;
    }
    if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) remaining_.notify_all();
  }
}

void ThreadPool::record_error() {
  std::lock_guard<std::mutex> lock(error_mutex_);
  if (!error_) error_ = std::current_exception();
}

void ThreadPool::run(int jobs, JobFn fn, void* ctx) {
  if (jobs <= 0) return;
  if (jobs == 1 || t_in_job || size_ == 1) {
    struct Restore {
      bool was;
      ~Restore() { t_in_job = was; }
    } restore{t_in_job};
    t_in_job = true;
    for (int j = 0; j < jobs; ++j) fn(ctx, j);
    return;
  }
  if (jobs > size_) throw std::logic_error("ThreadPool::run: more jobs than threads");
  std::lock_guard<std::mutex> lock(run_mutex_);
  fn_ = fn;
  ctx_ = ctx;
  jobs_ = jobs;
  remaining_.store(size_ - 1, std::memory_order_release);
  generation_.fetch_add(1, std::memory_order_acq_rel);
  generation_.notify_all();
  t_in_job = true;
  try {
    fn(ctx, 0);
  } catch (...) {
    record_error();
  }
  t_in_job = false;
  // Wait for every worker even when job 0 failed: they use ctx, which lives in our caller.
  spin_then_wait(
      remaining_, [&] { return remaining_.load(std::memory_order_acquire) == 0; },
      +[](std::atomic<int>& a) { return a.load(std::memory_order_acquire); }, spin_ns_);
  std::exception_ptr e;
  {
    std::lock_guard<std::mutex> elock(error_mutex_);
    std::swap(e, error_);
  }
  if (e) std::rethrow_exception(e);
}

int default_threads() {
  const char* env = std::getenv("WALKBACK_NUM_THREADS");
  if (env && *env != '\0') {  // set and not empty (empty means unset, as in shells)
    // A bad value is an error, not ignored: the user asked for something we would not do.
    char* end = nullptr;
    errno = 0;
    const long n = std::strtol(env, &end, 10);  // leading blanks skipped
    while (*end == ' ' || *end == '\t' || *end == '\n') ++end;  // and trailing ones
    if (errno != 0 || end == env || *end != '\0' || n < 1 || n > kMaxThreads)
      throw std::invalid_argument("WALKBACK_NUM_THREADS: expected an integer in [1, " +
                                  std::to_string(kMaxThreads) + "], got '" + env + "'");
    return static_cast<int>(n);
  }
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n >= 1) return n;
  }
  const unsigned hc = std::thread::hardware_concurrency();
  return hc ? static_cast<int>(hc) : 1;
}

ThreadPool& pool() {
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(default_threads());
  return *g_pool;
}

void set_num_threads(int n) {
  if (n < 1 || n > kMaxThreads)
    throw std::invalid_argument("set_num_threads: expected n in [1, " +
                                std::to_string(kMaxThreads) + "], got " + std::to_string(n));
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_pool = std::make_unique<ThreadPool>(n);
}

int num_threads() { return pool().size(); }

namespace {
std::atomic<bool> g_reproducible{true};
}

int slicing_threads() {
  return g_reproducible.load(std::memory_order_relaxed) ? kSliceThreads : pool().size();
}
void set_reproducible(bool on) { g_reproducible.store(on, std::memory_order_relaxed); }
bool reproducible() { return g_reproducible.load(std::memory_order_relaxed); }

}  // namespace wb
