"""Shared pieces of the benchmarks: timing, BLAS identification, the table."""

from __future__ import annotations

import json
import os
import platform
import time


def best_time(fn, *, min_time=0.3, repeats=3):
    """Best over `repeats` of the mean time of fn() over at least `min_time` seconds."""
    fn()
    n = 1
    while True:
        t = time.perf_counter()
        for _ in range(n):
            fn()
        dt = time.perf_counter() - t
        if dt >= min_time / 4 or n > 1_000_000:
            break
        n *= 2
    best = dt / n
    for _ in range(repeats - 1):
        t = time.perf_counter()
        for _ in range(n):
            fn()
        best = min(best, (time.perf_counter() - t) / n)
    return best


def sgemm_rate(rows, k, n, min_time=0.3):
    """The machine's best single-precision GEMM rate in GF/s on (rows, k) x (k, n): the faster
    of NumPy's sgemm and, from 8 rows, walkback's packed kernel (10 products per pack, as a
    chain or a batch uses its weights). For one row, NumPy's GEMV. The rooflines' rate."""
    import numpy as np

    a = np.random.default_rng(0).random((rows, k), dtype=np.float32)
    w = np.random.default_rng(1).random((k, n), dtype=np.float32)
    out = np.empty((rows, n), np.float32)
    t = best_time(lambda: np.matmul(a, w, out=out), min_time=min_time)
    try:
        from walkback import _backend

        cpu = _backend.cpu()
        if rows >= 8 and cpu.packed_gemm_supported():
            pause()
            t10 = best_time(
                lambda: cpu.packed_gemm_many([a] * 10, w, [out] * 10), min_time=min_time
            )
            t = min(t, t10 / 10)
    except ImportError:
        pass
    return 2 * rows * k * n / t / 1e9


def pause():
    # Lets the other pool's idle workers stop spinning before the next peer runs.
    time.sleep(0.5)


def race(peers: dict, rounds: int, min_time: float) -> dict:
    """{name: best seconds per call}: the peers run in turn, `rounds` times, with a pause
    before each, keeping each one's best (one pool never runs right after the other)."""
    best = dict.fromkeys(peers, float("inf"))
    for _ in range(rounds):
        for name, fn in peers.items():
            pause()
            best[name] = min(best[name], best_time(fn, min_time=min_time, repeats=2))
    return best


def blas_report() -> list[str]:
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return ["threadpoolctl not installed: BLAS kernels unknown"]
    return [
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture', '')} "
        f"threads={i.get('num_threads')} ({os.path.basename(i.get('filepath', ''))})"
        for i in threadpool_info()
    ]


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.machine()}"


def write_json(path, payload):
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)


def markdown_table(headers, rows) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def torch_peer():
    """PyTorch (a benchmark peer, never a dependency) with all cores, or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(os.cpu_count() or 1)
    return torch


def print_header(torch, walkback_module, numpy_module):
    """The machine, the versions and every thread pool loaded, before a table."""
    print(f"machine: {machine()}")
    print(
        f"walkback {walkback_module.__version__}, {walkback_module.get_num_threads()} threads; "
        f"numpy {numpy_module.__version__}; "
        f"torch {torch.__version__ if torch else 'not installed'}"
    )
    with open(os.devnull, "w") as devnull:
        # Also sets walkback's OpenBLAS to one thread per call, as its first product would,
        # so that the pools below are listed as they run.
        print("  walkback BLAS:", walkback_module.show_config(file=devnull)["blas"])
    for line in blas_report():
        print(f"  thread pool: {line}")


def save_rows(path, records, **extra):
    """The table's rows with the machine, its pools and the time, as JSON."""
    import time

    write_json(
        path,
        dict(
            machine=machine(),
            blas=blas_report(),
            rows=records,
            time=time.strftime("%Y-%m-%d %H:%M"),
            **extra,
        ),
    )
