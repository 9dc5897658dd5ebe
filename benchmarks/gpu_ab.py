"""Two walkback builds side by side on one GPU: the default DAE chain and walk-back training
(k = 1, SGD with momentum) at B = 256, 1024 and 4096 (D = 784, H = 1000, float32), each as a
fraction of the same shapes' GEMM-only time (PyTorch's GEMMs replayed from a CUDA graph, as in
benchmarks/gpu.py). Run it in alternate processes for the two builds, each on PYTHONPATH:

    for i in 1 2 3; do
      PYTHONPATH=/tmp/site_old python3 benchmarks/gpu_ab.py old
      PYTHONPATH=/tmp/site python3 benchmarks/gpu_ab.py new
    done
"""

from __future__ import annotations

import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import gpu  # noqa: E402

import walkback as wb  # noqa: E402

D, H, P = 784, 1000, 0.3
TRAIN_STEPS = 10


def row(cupy, torch, B, rng):
    x = (rng.random((B, D)) < 0.3).astype(np.float32)
    W = rng.normal(0, 0.05, (D, H)).astype(np.float32)
    cx, cW = cupy.asarray(x), cupy.asarray(W)
    cb1, cb0 = cupy.zeros(H, cupy.float32), cupy.zeros(D, cupy.float32)
    sp = wb.SaltAndPepper(P)
    steps = 50 if B <= 256 else 20

    def chain():
        wb.ops.chain_step(cx, cW, cb1, cb0, corruption=sp, seed=1, steps=steps)

    params = {"W1": cW.copy(), "b1": cb1.copy(), "b0": cb0.copy()}
    opt = wb.SGD(0.01, momentum=0.5)
    seeds = iter(range(10**9))

    def train():
        for _ in range(TRAIN_STEPS):
            _, g = wb.ops.walkback_grad(cx, **params, corruption=sp, seed=next(seeds))
            opt.step(params, g)

    tx, tW = torch.as_tensor(x, device="cuda"), torch.as_tensor(W, device="cuda")
    th, to = torch.empty((B, H), device="cuda"), torch.empty((B, D), device="cuda")
    tdw = torch.empty((D, H), device="cuda")

    def chain_gemms():
        for _ in range(steps):
            torch.mm(tx, tW, out=th)
            torch.mm(th, tW.t(), out=to)

    def train_gemms():  # the five GEMMs of a tied DAE's training step
        for _ in range(TRAIN_STEPS):
            torch.mm(tx, tW, out=th)
            torch.mm(th, tW.t(), out=to)
            torch.mm(to, tW, out=th)
            torch.mm(tx.t(), th, out=tdw)
            tdw.addmm_(to.t(), th)

    t_chain, t_train = gpu.timed(cupy, chain, 7), gpu.timed(cupy, train, 7)
    g_chain = gpu.timed(cupy, gpu.torch_graph(torch, chain_gemms), 7)
    g_train = gpu.timed(cupy, gpu.torch_graph(torch, train_gemms), 7)
    return (
        f"B={B}: chain {steps / t_chain:,.0f} steps/s = {g_chain / t_chain:.3f} of GEMM-only; "
        f"training {TRAIN_STEPS * B / t_train:,.0f} ex/s = {g_train / t_train:.3f} of GEMM-only"
    )


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    tag = argv[0] if argv else "walkback"
    if not wb.cuda_available():
        print("benchmarks/gpu_ab.py: no CUDA device (or walkback built without CUDA)")
        return 2
    import cupy
    import torch

    rng = np.random.default_rng(3)
    for B in (256, 1024, 4096):
        print(tag, row(cupy, torch, B, rng), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
