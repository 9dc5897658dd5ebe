// Run-time SIMD dispatch for the CPU loops: GCC compiles one clone per x86-64 level and picks
// the widest the machine has when the library loads (the machine that builds is not the one
// that runs, so no -march=native).
#pragma once

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define WB_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define WB_SIMD_CLONES
#endif
