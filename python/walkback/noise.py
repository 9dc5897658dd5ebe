"""Corruption processes C(x~ | x) of a denoising autoencoder's input.

Each is a small immutable description; the sampling happens in C++ (``elementwise.h``), fed by
walkback's Philox stream, so a seed gives the same corruption on every device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import _checks, _codes


def _check_probability(name: str, p) -> float:
    p = _checks.check_float(name, p)
    if not (0.0 <= p <= 1.0):
        raise ValueError(f"{name}: expected a probability in [0, 1], got {p}")
    return p


def _check_sigma(name: str, sigma) -> float:
    sigma = _checks.check_float(name, sigma)
    if not (sigma > 0.0 and math.isfinite(sigma)):
        raise ValueError(f"{name}: expected a positive finite standard deviation, got {sigma}")
    return sigma


class Corruption:
    """Base class of the corruptions: ``code`` and ``param`` are what the kernels take."""

    code: int = _codes.CORRUPTION_NONE

    @property
    def param(self) -> float:
        return 0.0

    def to_config(self) -> dict:
        return {"kind": type(self).__name__, "param": self.param}


@dataclass(frozen=True)
class NoCorruption(Corruption):
    """x~ = x (a plain autoencoder step)."""

    code = _codes.CORRUPTION_NONE


@dataclass(frozen=True)
class SaltAndPepper(Corruption):
    """With probability ``p`` a unit is replaced by 0 or 1, each with probability 1/2.

    The GSN paper's MNIST corruption (Bengio et al. 2014 use p = 0.4 on the input).
    """

    p: float = 0.3
    code = _codes.CORRUPTION_SALT_AND_PEPPER

    def __post_init__(self):
        object.__setattr__(self, "p", _check_probability("SaltAndPepper.p", self.p))

    @property
    def param(self) -> float:
        return self.p


@dataclass(frozen=True)
class Masking(Corruption):
    """With probability ``p`` a unit is set to 0 (masking noise, Vincent et al. 2008)."""

    p: float = 0.3
    code = _codes.CORRUPTION_MASKING

    def __post_init__(self):
        object.__setattr__(self, "p", _check_probability("Masking.p", self.p))

    @property
    def param(self) -> float:
        return self.p


@dataclass(frozen=True)
class BitFlip(Corruption):
    """With probability ``p`` a binary unit is flipped (x~ = 1 - x)."""

    p: float = 0.1
    code = _codes.CORRUPTION_BIT_FLIP

    def __post_init__(self):
        object.__setattr__(self, "p", _check_probability("BitFlip.p", self.p))

    @property
    def param(self) -> float:
        return self.p


@dataclass(frozen=True)
class GaussianCorruption(Corruption):
    """x~ = x + sigma * n with n a standard normal (additive isotropic Gaussian noise)."""

    sigma: float = 0.5
    code = _codes.CORRUPTION_GAUSSIAN

    def __post_init__(self):
        object.__setattr__(self, "sigma", _check_sigma("GaussianCorruption.sigma", self.sigma))

    @property
    def param(self) -> float:
        return self.sigma


@dataclass(frozen=True)
class GaussianNoise:
    """A GSN's hidden noise (Bengio et al. 2014): h = act(a + pre * n1) + post * n2 with n1, n2
    standard normals, added to every hidden layer. It is reparametrized, so gradients flow
    through it; 0 turns a side off. The paper's MNIST model uses pre = post = 2."""

    pre: float = 2.0
    post: float = 2.0

    def __post_init__(self):
        for side in ("pre", "post"):
            v = _checks.check_float(f"GaussianNoise.{side}", getattr(self, side))
            if not (v >= 0.0 and math.isfinite(v)):
                raise ValueError(f"GaussianNoise.{side}: expected a finite number >= 0, got {v}")
            object.__setattr__(self, side, v)

    def to_config(self) -> dict:
        return {"pre": self.pre, "post": self.post}


def as_hidden_noise(h) -> GaussianNoise:
    """None -> no hidden noise; a number s -> GaussianNoise(s, s); a GaussianNoise passes."""
    if h is None:
        return GaussianNoise(0.0, 0.0)
    if isinstance(h, GaussianNoise):
        return h
    if isinstance(h, (int, float, np.integer, np.floating)) and not isinstance(h, (bool, np.bool_)):
        return GaussianNoise(float(h), float(h))
    raise TypeError(
        f"hidden_noise: expected walkback.GaussianNoise(pre, post), a number or None, got {h!r}"
    )


_BY_NAME = {
    "NoCorruption": NoCorruption,
    "SaltAndPepper": SaltAndPepper,
    "Masking": Masking,
    "BitFlip": BitFlip,
    "GaussianCorruption": GaussianCorruption,
}


def as_corruption(c, name: str = "corruption") -> Corruption:
    """None -> NoCorruption(); a Corruption passes; anything else is a TypeError."""
    if c is None:
        return NoCorruption()
    if isinstance(c, Corruption):
        return c
    raise TypeError(
        f"{name}: expected a walkback corruption (SaltAndPepper, Masking, BitFlip, "
        f"GaussianCorruption) or None, got {c!r}"
    )


def corruption_from_config(cfg: dict) -> Corruption:
    cls = _BY_NAME.get(cfg.get("kind"))
    if cls is None:
        raise ValueError(f"unknown corruption {cfg.get('kind')!r}")
    if cls is NoCorruption:
        return cls()
    return cls(cfg["param"])
