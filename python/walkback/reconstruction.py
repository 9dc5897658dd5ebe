"""Reconstruction distributions p(x | w) of a visible layer."""

from __future__ import annotations

from dataclasses import dataclass

from . import _codes
from .noise import _check_sigma


class Reconstruction:
    name: str = ""

    @property
    def code(self) -> int:
        return _codes.RECONSTRUCTIONS[self.name]

    @property
    def sigma(self) -> float:
        return 1.0

    def to_config(self) -> dict:
        return {"kind": self.name, "sigma": self.sigma}


@dataclass(frozen=True)
class Bernoulli(Reconstruction):
    """p(x | w) = prod Bernoulli(x_i; sigmoid(o_i)): binary units (or grey levels as means)."""

    name = "bernoulli"


@dataclass(frozen=True)
class Gaussian(Reconstruction):
    """p(x | w) = prod N(x_i; o_i, sigma^2): real-valued units, fixed ``sigma``."""

    sigma: float = 1.0
    name = "gaussian"

    def __post_init__(self):
        object.__setattr__(self, "sigma", _check_sigma("Gaussian.sigma", self.sigma))


@dataclass(frozen=True)
class Categorical(Reconstruction):
    """p(x | w) = Categorical(softmax(o)) over a GSN segment's k units, which hold a one-hot
    state (a class label). Only GSN visible segments take it."""

    name = "categorical"


def as_reconstruction(r, name: str = "reconstruction", categorical: bool = False) -> Reconstruction:
    """'bernoulli' | 'gaussian' (sigma 1) | 'categorical' (when allowed) | an instance."""
    if r == "categorical":
        r = Categorical()
    if isinstance(r, Categorical) and not categorical:
        raise ValueError(f"{name}: a categorical reconstruction belongs to a GSN segment")
    if isinstance(r, Reconstruction):
        return r
    if r == "bernoulli":
        return Bernoulli()
    if r == "gaussian":
        return Gaussian()
    extra = ", 'categorical'" if categorical else ""
    raise ValueError(
        f"{name}: expected 'bernoulli', 'gaussian'{extra} or walkback.Gaussian(sigma), got {r!r}"
    )


def reconstruction_from_config(cfg: dict) -> Reconstruction:
    if cfg.get("kind") == "bernoulli":
        return Bernoulli()
    if cfg.get("kind") == "gaussian":
        return Gaussian(cfg["sigma"])
    if cfg.get("kind") == "categorical":
        return Categorical()
    raise ValueError(f"unknown reconstruction {cfg.get('kind')!r}")
