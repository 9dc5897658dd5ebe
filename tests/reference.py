"""NumPy references for walkback's kernels: the Philox stream, corruption, the DAE step.

Written from the papers and DESIGN.md, independently of the C++ code, so tests compare two
implementations fed the same numbers."""

from __future__ import annotations

import numpy as np

M0, M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
W0, W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
MASK = np.uint64(0xFFFFFFFF)
STREAM = {"corrupt": 0, "sample": 1, "init": 2, "user": 3}


def philox4x32_10(c0, c1, c2, c3, k0, k1):
    """Vectorised Philox4x32-10 (Salmon et al. 2011) on uint64 arrays holding 32-bit words."""
    c = [np.asarray(v, dtype=np.uint64) & MASK for v in (c0, c1, c2, c3)]
    k0 = np.asarray(k0, dtype=np.uint64) & MASK
    k1 = np.asarray(k1, dtype=np.uint64) & MASK
    for _ in range(10):
        p0 = M0 * c[0]
        p1 = M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & MASK
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + W0) & MASK
        k1 = (k1 + W1) & MASK
    return [v.astype(np.uint32) for v in c]


def u01(bits):
    return (((np.asarray(bits, np.uint32) >> 9).astype(np.float64) + 0.5) / 2**23).astype(
        np.float32
    )


def stream_bits(seed, step, chains, units, stream, first_chain=0):
    """(chains, units) uint32 words: unit u of chain c -> lane u % 4 of block u // 4."""
    unit = np.arange(units, dtype=np.uint64)
    chain = np.arange(first_chain, first_chain + chains, dtype=np.uint64)[:, None]
    group = (unit // np.uint64(4))[None, :]
    g, ch = np.broadcast_arrays(group, chain)
    sid = STREAM.get(stream, stream)
    out = philox4x32_10(g, ch, step, sid, seed & 0xFFFFFFFF, seed >> 32)
    lane = (unit % np.uint64(4)).astype(np.int64)
    stacked = np.stack(out, axis=-1)
    return np.take_along_axis(stacked, np.broadcast_to(lane[None, :, None], g.shape + (1,)), -1)[
        ..., 0
    ]


def uniform(seed, step, chains, units, stream, first_chain=0):
    return u01(stream_bits(seed, step, chains, units, stream, first_chain))


def normal(seed, step, chains, units, stream, first_chain=0):
    """Box-Muller over lanes (0, 1) and (2, 3) of each block, in float64."""
    groups = (units + 3) // 4
    u = uniform(seed, step, chains, groups * 4, stream, first_chain).astype(np.float64)
    u = u.reshape(chains, groups, 2, 2)
    r = np.sqrt(-2.0 * np.log(u[..., 0]))
    t = 2 * np.pi * u[..., 1]
    z = np.stack([r * np.cos(t), r * np.sin(t)], axis=-1)
    return z.reshape(chains, groups * 4)[:, :units]


def corrupt(kind, param, x, u, n):
    if kind == "salt_and_pepper":
        return np.where(u < param, np.where(u < param / 2, 0.0, 1.0), x).astype(x.dtype)
    if kind == "masking":
        return np.where(u < param, 0.0, x).astype(x.dtype)
    if kind == "bit_flip":
        return np.where(u < param, 1.0 - x, x).astype(x.dtype)
    if kind == "gaussian":
        return (x + param * n).astype(x.dtype)
    return x.copy()


def activate(name, a):
    if name == "sigmoid":
        return 1 / (1 + np.exp(-a))
    if name == "tanh":
        return np.tanh(a)
    if name == "relu":
        return np.maximum(a, 0)
    if name == "leaky_relu":
        return np.where(a > 0, a, 0.05 * a)
    return a


def library_normal(seed, step, chains, units, stream, first_chain=0):
    """walkback's own normals (float32 Box-Muller), checked against `normal` in test_rng."""
    import walkback as wb

    return wb.ops.normal(
        chains, units, seed=seed, step=step, stream=stream, first_chain=first_chain
    ).astype(np.float64)


def dae_step(
    x,
    params,
    *,
    activation,
    corruption,
    recon,
    sigma,
    seed,
    step,
    clamp=None,
    first_chain=0,
    normal=library_normal,
):
    """One DAE chain step in float64; returns (x_next, mean). Normals come from `normal`
    (by default the library's, so float64 tests compare the maths, not two Box-Mullers)."""
    b, d = x.shape
    kind, param = corruption
    u = uniform(seed, step, b, d, "corrupt", first_chain)
    nz = normal(seed, step, b, d, "corrupt", first_chain) if kind == "gaussian" else None
    xt = corrupt(kind, param, x.astype(np.float64), u, nz)
    W = params["W1"].astype(np.float64)
    h = activate(activation, xt @ W + params["b1"])
    dec = params["U1"].astype(np.float64) if "U1" in params else W.T
    o = h @ dec + params["b0"]
    if recon == "bernoulli":
        mean = 1 / (1 + np.exp(-o))
        new = (uniform(seed, step, b, d, "sample", first_chain) < mean).astype(np.float64)
    else:
        mean = o
        new = mean + sigma * normal(seed, step, b, d, "sample", first_chain)
    if clamp is not None:
        new = np.where(clamp, x, new)
        mean = np.where(clamp, x, mean)
    return new, mean
