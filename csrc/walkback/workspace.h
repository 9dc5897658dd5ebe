// Buffers that a hot call keeps per thread between calls. Training calls the same function
// once per batch with the same shapes; fresh allocations would be zeroed and page-faulted in
// every time (measured: 3-4% of a shaped-chain training step). A workspace that holds more
// than kKeepBytes when the call ends is released: one large evaluation should not pin its
// memory in a thread for good.
#pragma once
#include <cstddef>
#include <vector>

namespace wb {

constexpr size_t kKeepBytes = size_t(256) << 20;

template <class T>
size_t bytes_of(const std::vector<T>& v) {
  return v.capacity() * sizeof(T);
}
template <class T>
size_t bytes_of(const std::vector<std::vector<T>>& vs) {
  size_t b = 0;
  for (const auto& v : vs) b += bytes_of(v);
  return b;
}
// The capacity of every buffer given, in bytes: a workspace's bytes().
template <class... V>
size_t total_bytes(const V&... v) {
  return (size_t(0) + ... + bytes_of(v));
}

// The calling thread's W (a struct of buffers with a bytes() method), released when the
// guard goes out of scope if it then holds more than kKeepBytes.
template <class W>
class KeptWorkspace {
 public:
  KeptWorkspace() : w_(instance()) {}
  ~KeptWorkspace() {
    if (w_.bytes() > kKeepBytes) w_ = W();
  }
  KeptWorkspace(const KeptWorkspace&) = delete;
  KeptWorkspace& operator=(const KeptWorkspace&) = delete;
  W& operator*() { return w_; }
  W* operator->() { return &w_; }

 private:
  static W& instance() {
    thread_local W w;
    return w;
  }
  W& w_;
};

}  // namespace wb
