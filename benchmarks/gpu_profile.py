"""Where the GPU time goes: the kernels of walkback's DAE chain and training step (and of the
PyTorch GEMMs they are compared with), read from a CUPTI trace taken by torch.profiler, which
records every kernel of the process, ours included. Prints, per case, each kernel's count and
time and the share of the wall time the GPU was busy.

    python benchmarks/gpu_profile.py [--out DIR]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sys

import numpy as np

import walkback as wb

D, H = 784, 1000


def trace(torch, fn, path):
    from torch.profiler import ProfilerActivity, profile

    fn()  # warm: graphs captured, kernels loaded
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    prof.export_chrome_trace(path)
    with open(path) as f:
        events = json.load(f)["traceEvents"]
    kernels = [e for e in events if e.get("cat") in ("kernel", "gpu_memcpy", "gpu_memset")]
    return kernels


def report(name, kernels):
    if not kernels:
        print(f"\n## {name}: no kernels recorded")
        return
    by = collections.defaultdict(lambda: [0, 0.0])
    for e in kernels:
        by[e["name"][:70]][0] += 1
        by[e["name"][:70]][1] += float(e["dur"])
    t0 = min(float(e["ts"]) for e in kernels)
    t1 = max(float(e["ts"]) + float(e["dur"]) for e in kernels)
    busy = sum(v[1] for v in by.values())
    # Time with at least one kernel running (kernels on two streams overlap): the rest of the
    # span is gaps between kernels and host waits.
    spans = sorted((float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in kernels)
    covered, end = 0.0, t0
    for a, b in spans:
        if b > end:
            covered += b - max(a, end)
            end = b
    print(
        f"\n## {name}: span {t1 - t0:.0f} us, kernels {busy:.0f} us ({busy / (t1 - t0):.0%}), "
        f"some kernel running {covered:.0f} us ({covered / (t1 - t0):.0%})"
    )
    # Idle time before each kernel: from the end of everything that started before it (0 when
    # it overlaps one); the median per kernel name says which boundary the gaps sit at.
    idle = collections.defaultdict(list)
    end = None
    for e in sorted(kernels, key=lambda e: float(e["ts"])):
        a, b = float(e["ts"]), float(e["ts"]) + float(e["dur"])
        if end is not None:
            idle[e["name"][:70]].append(max(0.0, a - end))
        end = b if end is None else max(end, b)
    print("  (time, count x mean, median idle before it, name)")
    for k, (n, us) in sorted(by.items(), key=lambda kv: -kv[1][1])[:14]:
        gap = f"{np.median(idle[k]):6.2f}" if idle[k] else "     -"
        print(f"  {us:9.1f} us  {n:5d} x {us / n:8.2f} us  idle {gap} us  {k}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=".")
    a = ap.parse_args(argv)
    if not wb.cuda_available():
        print("benchmarks/gpu_profile.py: no CUDA device")
        return 2
    import cupy
    import torch

    from walkback import _gpu

    rng = np.random.default_rng(0)
    W = cupy.asarray(rng.normal(0, 0.05, (D, H)).astype(np.float32))
    b1 = cupy.zeros(H, cupy.float32)
    b0 = cupy.zeros(D, cupy.float32)
    sp = wb.SaltAndPepper(0.3)
    cases = {}
    for B, steps in ((16, 50), (4096, 32)):  # 32: two graph replays
        x = cupy.asarray((rng.random((B, D)) < 0.3).astype(np.float32))
        cases[f"chain B={B}, {steps} steps"] = lambda x=x, steps=steps: wb.ops.chain_step(
            x, W, b1, b0, corruption=sp, seed=1, steps=steps
        )
        # The W layout the automatic choice did not take (cuda/dae_chain.cu).
        other = "stored" if 2 <= B < 1024 else "transposed"

        def other_layout(x=x, steps=steps, other=other):
            old = _gpu.W_LAYOUT
            _gpu.W_LAYOUT = other
            try:
                return wb.ops.chain_step(x, W, b1, b0, corruption=sp, seed=1, steps=steps)
            finally:
                _gpu.W_LAYOUT = old

        cases[f"chain B={B}, {steps} steps, W {other}"] = other_layout
        params = {"W1": W.copy(), "b1": b1.copy(), "b0": b0.copy()}
        opt = wb.SGD(0.01, momentum=0.5)

        def train(x=x, params=params, opt=opt, iters=20 if B == 16 else 5):
            for i in range(iters):
                _, g = wb.ops.walkback_grad(x, **params, corruption=sp, seed=i)
                opt.step(params, g)

        cases[f"train B={B}"] = train
        tx = torch.as_tensor(x)
        tW = torch.as_tensor(W)
        th = torch.empty((B, H), device="cuda")
        to = torch.empty((B, D), device="cuda")

        def gemms(tx=tx, tW=tW, th=th, to=to, steps=steps):
            for _ in range(steps):
                torch.mm(tx, tW, out=th)
                torch.mm(th, tW.t(), out=to)

        cases[f"torch GEMMs B={B}, {steps} steps"] = gemms
    os.makedirs(a.out, exist_ok=True)
    for i, (name, fn) in enumerate(cases.items()):
        try:
            report(name, trace(torch, fn, os.path.join(a.out, f"trace{i}.json")))
        except Exception as e:  # noqa: BLE001 - one failed case must not lose the others
            print(f"\n## {name}: failed: {type(e).__name__}: {e}")
    gemm_layouts(torch, rng)
    return 0


def gemm_layouts(torch, rng, reps=20):
    """CUDA-event time of each way to lay out a chain step's two products for cuBLAS (the
    same FLOPs; cuBLAS picks its kernel by layout and shape): which ones a chain could use."""
    W = torch.as_tensor(rng.normal(0, 0.05, (D, H)).astype(np.float32), device="cuda")
    Wt = W.t().contiguous()
    print("\n## GEMM layouts (us per product, median of 20)")
    for B in (1024, 4096):
        x = torch.rand((B, D), device="cuda")
        h = torch.rand((B, H), device="cuda")
        variants = {
            "h = x W": (x, W),
            "h^T = W^T x^T (W^T copied)": (Wt, x.t()),
            "o = h W^T (W as stored)": (h, W.t()),
            "o = h W^T (W^T copied)": (h, Wt),
            "o^T = W h^T": (W, h.t()),
        }
        for name, (a, b) in variants.items():
            for _ in range(3):
                torch.mm(a, b)
            out = []
            for _ in range(reps):
                e0, e1 = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                e0.record()
                torch.mm(a, b)
                e1.record()
                e1.synchronize()
                out.append(e0.elapsed_time(e1) * 1e3)
            print(f"  B={B:5d}  {np.median(out):8.1f} us  {name}")


if __name__ == "__main__":
    sys.exit(main())
