"""Parzen-window log-likelihood, 10,000 points x 10,000 centres x 784: walkback's C++ kernel
(GEMM blocks + streaming log-sum-exp) vs a blocked NumPy/SciPy implementation and PyTorch, in
one process. "sgemm frac" = time of the cross-term GEMMs alone (NumPy sgemm, the same blocks)
over the time of the whole evaluation. Data: MNIST test images scored against the first
10,000 training images (real-valued grey levels in [0, 1]) when ../shared/data/mnist exists,
else uniform random data of the same shape; sigma = 0.2.

    python benchmarks/parzen.py [--n 10000] [--mnist DIR]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import walkback as wb

from _common import blas_report, machine, markdown_table, pause, write_json

SIGMA = 0.2
BLOCK = 1000


def best_of(fn, repeats=2):
    best = float("inf")
    for _ in range(repeats):
        pause()
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def numpy_parzen(s, x):
    from scipy.special import logsumexp

    s2 = (s.astype(np.float64) ** 2).sum(1)
    out = np.empty(len(x))
    inv = 1 / (2 * SIGMA**2)
    norm = np.log(len(s)) + 0.5 * s.shape[1] * np.log(2 * np.pi * SIGMA**2)
    for b in range(0, len(x), BLOCK):
        xb = x[b : b + BLOCK]
        d2 = (xb.astype(np.float64) ** 2).sum(1)[:, None] + s2[None, :] - 2.0 * (xb @ s.T)
        out[b : b + BLOCK] = logsumexp(-d2 * inv, axis=1) - norm
    return out


def torch_parzen(torch, s, x):
    ts, tx = torch.from_numpy(s), torch.from_numpy(x)
    inv = 1 / (2 * SIGMA**2)
    norm = np.log(len(s)) + 0.5 * s.shape[1] * np.log(2 * np.pi * SIGMA**2)
    out = []
    s2 = (ts * ts).sum(1)
    for b in range(0, len(x), BLOCK):
        xb = tx[b : b + BLOCK]
        d2 = (xb * xb).sum(1)[:, None] + s2[None, :] - 2.0 * (xb @ ts.T)
        out.append(torch.logsumexp(-d2 * inv, dim=1) - norm)
    return torch.cat(out).numpy()


def gemm_only(s, x):
    buf = np.empty((BLOCK, len(s)), np.float32)
    st = s.T
    for b in range(0, len(x), BLOCK):
        xb = x[b : b + BLOCK]
        np.matmul(xb, st, out=buf[: len(xb)])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="points and centres")
    default = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "mnist")
    ap.add_argument("--mnist", default=default)
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "parzen.json"))
    args = ap.parse_args()
    try:
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
    except ImportError:
        torch = None
    if os.path.isdir(args.mnist):
        s = wb.data.load_mnist(args.mnist, "train")[0][: args.n]
        x = wb.data.load_mnist(args.mnist, "test")[0][: args.n]
        source = "MNIST (test vs first training images)"
    else:
        rng = np.random.default_rng(0)
        s = rng.random((args.n, 784), dtype=np.float32)
        x = rng.random((args.n, 784), dtype=np.float32)
        source = "uniform random (MNIST not found)"
    s, x = np.ascontiguousarray(s), np.ascontiguousarray(x)
    print(f"machine: {machine()}")
    print(f"walkback {wb.__version__}, {wb.get_num_threads()} threads; data: {source}")
    for line in blas_report():
        print(f"  thread pool: {line}")
    results = {}
    times = {
        "sgemm only (NumPy)": best_of(lambda: gemm_only(s, x)),
        "walkback": best_of(
            lambda: results.__setitem__("walkback", wb.ops.parzen_logpdf(s, x, SIGMA))
        ),
        "NumPy/SciPy blocked": best_of(lambda: results.__setitem__("numpy", numpy_parzen(s, x))),
    }
    if torch is not None:
        times["PyTorch blocked"] = best_of(
            lambda: results.__setitem__("torch", torch_parzen(torch, s, x))
        )
    # Accuracy against float64 on the first 500 points (the NumPy peer works in float32 too).
    ref = numpy_parzen(s.astype(np.float64), x[:500].astype(np.float64))
    got = results["walkback"][:500]
    err = float(np.max(np.abs(got - ref)))
    mean_rel = float(abs(got.mean() - ref.mean()) / abs(ref.mean()))
    gemm = times["sgemm only (NumPy)"]
    flops = 2.0 * len(s) * len(x) * s.shape[1]
    rows = [
        [
            name,
            f"{t:.3f}",
            f"{flops / t / 1e9:.0f}",
            f"{gemm / t:.2f}",
            f"{times['walkback'] and t / times['walkback']:.2f}x",
        ]
        for name, t in times.items()
    ]
    print()
    print(
        f"mean log-likelihood (sigma {SIGMA}): walkback {results['walkback'].mean():.3f}, "
        f"NumPy {results['numpy'].mean():.3f}; against float64 on 500 points: max abs error "
        f"{err:.1e} nats, relative error of the mean {mean_rel:.1e}"
    )
    print(
        markdown_table(
            ["peer", "seconds", "GF/s (cross terms)", "sgemm frac", "time / walkback"], rows
        )
    )
    write_json(
        args.json,
        dict(
            machine=machine(),
            blas=blas_report(),
            data=source,
            n=args.n,
            sigma=SIGMA,
            seconds=times,
            max_abs_err_f64=err,
            mean_rel_err_f64=mean_rel,
            time=time.strftime("%Y-%m-%d %H:%M"),
        ),
    )


if __name__ == "__main__":
    main()
