#include "cuda/cublas_runtime.h"

#include <dlfcn.h>

#include <mutex>
#include <stdexcept>

namespace wb::cuda {
namespace {

Cublas g_cublas;
bool g_loaded = false;
std::mutex g_mutex;

template <class F>
void bind(void* lib, F& fn, const char* name) {
  fn = reinterpret_cast<F>(dlsym(lib, name));
  if (!fn) throw std::runtime_error(std::string("cuBLAS: symbol ") + name + " not found");
}

}  // namespace

const Cublas& load_cublas(const std::vector<std::string>& paths) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_loaded) return g_cublas;
  const char* sonames[] = {"libcublas.so.13", "libcublas.so.12"};
  void* lib = nullptr;
  std::string origin, tried;
  for (const char* s : sonames) {
    lib = dlopen(s, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    if (lib) {
      origin = std::string(s) + " (already loaded)";
      break;
    }
  }
  for (size_t i = 0; !lib && i < paths.size(); ++i) {
    lib = dlopen(paths[i].c_str(), RTLD_NOW | RTLD_LOCAL);
    if (lib) origin = paths[i];
    else tried += "\n  " + paths[i] + ": " + dlerror();
  }
  for (const char* s : sonames) {
    if (lib) break;
    lib = dlopen(s, RTLD_NOW | RTLD_LOCAL);
    if (lib) origin = s;
    else tried += std::string("\n  ") + s + ": " + dlerror();
  }
  if (!lib)
    throw std::runtime_error(
        "walkback's CUDA backend needs cuBLAS at run time and could not load it (install the "
        "nvidia-cublas wheel that CuPy uses, or set WALKBACK_CUBLAS to libcublas.so); tried:" +
        tried);
  Cublas c;
  bind(lib, c.create, "cublasCreate_v2");
  bind(lib, c.destroy, "cublasDestroy_v2");
  bind(lib, c.set_stream, "cublasSetStream_v2");
  bind(lib, c.set_workspace, "cublasSetWorkspace_v2");
  bind(lib, c.sgemm, "cublasSgemm_v2");
  bind(lib, c.dgemm, "cublasDgemm_v2");
  bind(lib, c.sgemv, "cublasSgemv_v2");
  bind(lib, c.dgemv, "cublasDgemv_v2");
  c.origin = origin;
  g_cublas = c;
  g_loaded = true;
  return g_cublas;
}

const Cublas& cublas() {
  if (!g_loaded) throw std::runtime_error("cuBLAS is not loaded (internal: call load_cublas)");
  return g_cublas;
}

void check_cublas(int status, const char* what) {
  if (status != 0)
    throw std::runtime_error(std::string(what) + ": cuBLAS status " + std::to_string(status));
}

}  // namespace wb::cuda
