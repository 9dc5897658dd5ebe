"""GPU benchmark (issue: CUDA backend): DAE chain steps/s and walk-back training examples/s on
one GPU, side by side with PyTorch CUDA eager, a CUDA graph of that PyTorch code, CuPy, and the
cuBLAS-GEMM-only time of the same shapes (PyTorch GEMMs replayed from a CUDA graph: the floor
for large batches). D = 784, H = 1000, float32, salt-and-pepper 0.3, sigmoid units, Bernoulli
reconstruction, tied weights. Times are CUDA-event medians on one stream.

    python benchmarks/gpu.py [--sizes 1,16,256,1024,4096] [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

import walkback as wb

D, H, P = 784, 1000, 0.3


def timed(cupy, fn, reps, warm=2):
    """Median seconds of fn() between two CUDA events on the current (null) stream."""
    for _ in range(warm):
        fn()
    cupy.cuda.Device().synchronize()
    out = []
    for _ in range(reps):
        a, b = cupy.cuda.Event(), cupy.cuda.Event()
        a.record()
        fn()
        b.record()
        b.synchronize()
        out.append(cupy.cuda.get_elapsed_time(a, b) / 1e3)
    return float(np.median(out))


def peer(name, results, key, fn):
    """Runs one peer; a failure is printed and recorded as None, the others go on."""
    try:
        results[key] = fn()
    except Exception as e:  # noqa: BLE001 - one broken peer must not lose the other numbers
        print(f"  {name}: failed: {type(e).__name__}: {e}", file=sys.stderr)
        results[key] = None


# ---------------------------------------------------------------- the chain, per peer
def torch_chain(torch, x, W, b1, b0, steps):
    for _ in range(steps):
        u = torch.rand_like(x)
        xt = torch.where(u < P, (u < 0.5 * P).to(x.dtype), x)
        h = torch.sigmoid(torch.addmm(b1, xt, W))
        o = torch.sigmoid(torch.addmm(b0, h, W.t()))
        x = (torch.rand_like(o) < o).to(x.dtype)
    return x


def cupy_chain(cupy, x, W, b1, b0, steps):
    for _ in range(steps):
        u = cupy.random.random(x.shape, dtype=cupy.float32)
        xt = cupy.where(u < P, (u < 0.5 * P).astype(x.dtype), x)
        h = 1 / (1 + cupy.exp(-(xt @ W + b1)))
        o = 1 / (1 + cupy.exp(-(h @ W.T + b0)))
        x = (cupy.random.random(o.shape, dtype=cupy.float32) < o).astype(x.dtype)
    return x


def torch_graph(torch, body, warm=2):
    """A CUDA graph of body() (PyTorch's recipe: warm up on a side stream, then capture)."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(warm):
            body()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        body()
    return g.replay


def chain_row(cupy, torch, B, steps, reps):
    rng = np.random.default_rng(B)
    x = (rng.random((B, D)) < 0.3).astype(np.float32)
    W = rng.normal(0, 0.05, (D, H)).astype(np.float32)
    b1 = np.zeros(H, np.float32)
    b0 = np.zeros(D, np.float32)
    r = {"B": B, "steps_per_call": steps}
    cx, cW, cb1, cb0 = (cupy.asarray(a) for a in (x, W, b1, b0))
    sp = wb.SaltAndPepper(P)
    from walkback import _gpu

    def ours(per_graph, branches=0, layout="auto"):
        def run():
            old = _gpu.STEPS_PER_GRAPH, _gpu.BRANCHES, _gpu.W_LAYOUT
            _gpu.STEPS_PER_GRAPH, _gpu.BRANCHES, _gpu.W_LAYOUT = per_graph, branches, layout
            try:
                return timed(
                    cupy,
                    lambda: wb.ops.chain_step(cx, cW, cb1, cb0, corruption=sp, seed=1, steps=steps),
                    reps,
                )
            finally:
                _gpu.STEPS_PER_GRAPH, _gpu.BRANCHES, _gpu.W_LAYOUT = old

        return run

    peer("walkback", r, "walkback", ours(16))
    peer("walkback, no graph", r, "walkback_no_graph", ours(0))
    # The ablation of how the second GEMM reads W: the layout "auto" did not pick.
    other = "stored" if 2 <= B < 1024 else "transposed"
    r["other_w_layout"] = other
    peer(f"walkback, W {other}", r, "walkback_other_layout", ours(16, 0, other))
    # Large batches, both branch counts forced (the default is two from 4096 rows on).
    r["walkback_one_branch"] = r["walkback_two_branches"] = None
    if B >= 1024:
        peer("walkback, one branch", r, "walkback_one_branch", ours(16, 1))
        peer("walkback, two branches", r, "walkback_two_branches", ours(16, 2))
    tx, tW, tb1, tb0 = (torch.as_tensor(a, device="cuda") for a in (x, W, b1, b0))
    with torch.no_grad():
        peer(
            "torch eager",
            r,
            "torch_eager",
            lambda: timed(cupy, lambda: torch_chain(torch, tx, tW, tb1, tb0, steps), reps),
        )

        def graph():
            replay = torch_graph(torch, lambda: torch_chain(torch, tx, tW, tb1, tb0, steps))
            return timed(cupy, replay, reps)

        peer("torch graph", r, "torch_graph", graph)
        th = torch.empty((B, H), device="cuda")
        to = torch.empty((B, D), device="cuda")

        def gemms():
            for _ in range(steps):
                torch.mm(tx, tW, out=th)
                torch.mm(th, tW.t(), out=to)

        peer("GEMM only", r, "gemm_only", lambda: timed(cupy, torch_graph(torch, gemms), reps))
        tWt = tW.t().contiguous()

        def gemms_wt():  # the second product from a contiguous copy of W^T
            for _ in range(steps):
                torch.mm(tx, tW, out=th)
                torch.mm(th, tWt, out=to)

        peer(
            "GEMM only, W^T copied",
            r,
            "gemm_only_wt",
            lambda: timed(cupy, torch_graph(torch, gemms_wt), reps),
        )
    peer(
        "cupy",
        r,
        "cupy",
        lambda: timed(cupy, lambda: cupy_chain(cupy, cx, cW, cb1, cb0, steps), reps),
    )
    for k in (
        "walkback",
        "walkback_no_graph",
        "walkback_one_branch",
        "walkback_two_branches",
        "walkback_other_layout",
        "torch_eager",
        "torch_graph",
        "cupy",
        "gemm_only",
        "gemm_only_wt",
    ):
        if r.get(k) is not None:
            r[k] = steps / r[k]  # steps per second
    return r


# ---------------------------------------------------------------- training, per peer
def train_row(cupy, torch, B, iters, reps):
    rng = np.random.default_rng(B + 1)
    x = (rng.random((B, D)) < 0.3).astype(np.float32)
    W = rng.normal(0, 0.05, (D, H)).astype(np.float32)
    r = {"B": B, "steps_per_call": iters}
    params = {
        "W1": cupy.asarray(W),
        "b1": cupy.zeros(H, cupy.float32),
        "b0": cupy.zeros(D, cupy.float32),
    }
    cx = cupy.asarray(x)
    sp = wb.SaltAndPepper(P)
    opt = wb.SGD(0.01, momentum=0.5)
    seeds = iter(range(10**9))

    from walkback import _gpu

    def ours(wait, branches=0):
        def run():
            old = _gpu.BRANCHES
            _gpu.BRANCHES = branches
            try:
                for _ in range(iters):
                    _, g = wb.ops.walkback_grad(
                        cx, **params, corruption=sp, seed=next(seeds), wait=wait
                    )
                    opt.step(params, g)
            finally:
                _gpu.BRANCHES = old

        return run

    peer("walkback", r, "walkback", lambda: timed(cupy, ours(False), reps))
    # wait=True reads every loss back as a float (and checks the data): what fit does.
    peer("walkback, wait", r, "walkback_wait", lambda: timed(cupy, ours(True), reps))
    # DAE.fit over `iters` batches of B rows (one epoch: shuffling, gathering each batch, the
    # optimizer, each loss read a batch late): what a user's training loop gets.
    data = cupy.asarray((rng.random((B * iters, D)) < 0.3).astype(np.float32))
    model = wb.DAE(D, H, corruption=sp, seed=0).to("cuda")

    def fit():
        model.fit(
            data,
            epochs=1,
            batch_size=B,
            optimizer=wb.SGD(0.01, momentum=0.5),
            progress=False,
            seed=next(seeds),
        )

    peer("walkback fit", r, "walkback_fit", lambda: timed(cupy, fit, reps))
    r["walkback_one_branch"] = None
    if B >= 1024:  # the ablation of the two row branches large batches run as
        peer(
            "walkback, one branch",
            r,
            "walkback_one_branch",
            lambda: timed(cupy, ours(False, 1), reps),
        )
    F = torch.nn.functional
    tx = torch.as_tensor(x, device="cuda")
    tW = torch.as_tensor(W, device="cuda").requires_grad_()
    tb1 = torch.zeros(H, device="cuda", requires_grad=True)
    tb0 = torch.zeros(D, device="cuda", requires_grad=True)
    topt = torch.optim.SGD([tW, tb1, tb0], lr=0.01, momentum=0.5)

    def tstep():
        u = torch.rand_like(tx)
        xt = torch.where(u < P, (u < 0.5 * P).to(tx.dtype), tx)
        h = torch.sigmoid(torch.addmm(tb1, xt, tW))
        z = torch.addmm(tb0, h, tW.t())
        loss = F.binary_cross_entropy_with_logits(z, tx, reduction="sum") / B
        topt.zero_grad(set_to_none=False)
        loss.backward()
        topt.step()
        return loss

    def eager():
        for _ in range(iters):
            tstep()

    def eager_item():
        for _ in range(iters):
            tstep().item()  # what a loop that watches its loss (as fit does) pays

    peer("torch eager", r, "torch_eager", lambda: timed(cupy, eager, reps))
    peer("torch eager + loss.item()", r, "torch_eager_item", lambda: timed(cupy, eager_item, reps))

    def graph():
        replay = torch_graph(torch, tstep, warm=3)

        def run():
            for _ in range(iters):
                replay()

        return timed(cupy, run, reps)

    peer("torch graph", r, "torch_graph", graph)
    with torch.no_grad():
        th = torch.empty((B, H), device="cuda")
        to = torch.empty((B, D), device="cuda")
        tdw = torch.empty((D, H), device="cuda")

        def gemms():  # the five GEMMs of a tied DAE's training step
            torch.mm(tx, tW, out=th)
            torch.mm(th, tW.t(), out=to)
            torch.mm(to, tW, out=th)
            torch.mm(tx.t(), th, out=tdw)
            tdw.addmm_(to.t(), th)

        def gemm_time():
            replay = torch_graph(torch, gemms)

            def run():
                for _ in range(iters):
                    replay()

            return timed(cupy, run, reps)

        peer("GEMM only", r, "gemm_only", gemm_time)
    for k in (
        "walkback",
        "walkback_wait",
        "walkback_fit",
        "walkback_one_branch",
        "torch_eager",
        "torch_eager_item",
        "torch_graph",
        "gemm_only",
    ):
        if r.get(k) is not None:
            r[k] = B * iters / r[k]  # examples per second
    return r


def fmt(v):
    return "-" if v is None else f"{v:,.0f}"


def ratio(a, b):
    return "-" if a is None or b is None else f"{a / b:.2f}"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,16,256,1024,4096")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    if not wb.cuda_available():
        print("benchmarks/gpu.py: no CUDA device (or walkback built without CUDA)")
        return 2
    import cupy
    import torch

    props = cupy.cuda.runtime.getDeviceProperties(0)
    info = {
        "device": props["name"].decode() if isinstance(props["name"], bytes) else props["name"],
        "driver": cupy.cuda.runtime.driverGetVersion(),
        "runtime": cupy.cuda.runtime.runtimeGetVersion(),
        "cupy": cupy.__version__,
        "torch": torch.__version__,
        "walkback": wb.__version__,
        "tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    print("# GPU benchmark:", json.dumps(info))
    reps = 3 if a.quick else 7
    sizes = [int(s) for s in a.sizes.split(",")]
    chain, train = [], []
    t0 = time.perf_counter()
    for B in sizes:
        steps = 200 if B <= 16 else (50 if B <= 256 else 20)
        chain.append(chain_row(cupy, torch, B, steps, reps))
        print("chain", json.dumps(chain[-1]), flush=True)
    for B in sizes:
        iters = 50 if B <= 256 else 10
        train.append(train_row(cupy, torch, B, iters, reps))
        print("train", json.dumps(train[-1]), flush=True)
    print(f"\n({time.perf_counter() - t0:.0f} s)\n")
    print("Chain steps/s (D=784, H=1000; higher is better)\n")
    print(
        "| B | walkback | no graph | one branch | two branches | other W layout | torch eager "
        "| torch graph | CuPy | GEMM only | GEMM only, W^T copied | vs eager | of GEMM-only "
        "| of the faster GEMM-only |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in chain:
        best = max((v for v in (r["gemm_only"], r["gemm_only_wt"]) if v is not None), default=None)
        print(
            f"| {r['B']} | {fmt(r['walkback'])} | {fmt(r['walkback_no_graph'])} | "
            f"{fmt(r['walkback_one_branch'])} | {fmt(r['walkback_two_branches'])} | "
            f"{fmt(r['walkback_other_layout'])} ({r['other_w_layout']}) | "
            f"{fmt(r['torch_eager'])} | {fmt(r['torch_graph'])} | {fmt(r['cupy'])} | "
            f"{fmt(r['gemm_only'])} | {fmt(r['gemm_only_wt'])} | "
            f"{ratio(r['walkback'], r['torch_eager'])} | "
            f"{ratio(r['walkback'], r['gemm_only'])} | {ratio(r['walkback'], best)} |"
        )
    print("\nTraining examples/s (walk-back k=1 + SGD momentum; higher is better)\n")
    print(
        "| B | walkback | walkback, wait | walkback fit | one branch | torch eager | "
        "torch eager + item | torch graph | GEMM only | vs eager | wait vs eager + item "
        "| of GEMM-only |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in train:
        print(
            f"| {r['B']} | {fmt(r['walkback'])} | {fmt(r.get('walkback_wait'))} | "
            f"{fmt(r.get('walkback_fit'))} | "
            f"{fmt(r['walkback_one_branch'])} | {fmt(r['torch_eager'])} | "
            f"{fmt(r['torch_eager_item'])} | "
            f"{fmt(r['torch_graph'])} | {fmt(r['gemm_only'])} | "
            f"{ratio(r['walkback'], r['torch_eager'])} | "
            f"{ratio(r.get('walkback_wait'), r['torch_eager_item'])} | "
            f"{ratio(r['walkback'], r['gemm_only'])} |"
        )
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"info": info, "chain": chain, "train": train}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
