"""Visible segments of a GSN: named runs of visible units, each with its own reconstruction,
corruption and loss weight (e.g. an image and its one-hot class label)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks
from .noise import Corruption, as_corruption, corruption_from_config
from .reconstruction import as_reconstruction, reconstruction_from_config

DEFAULT = "default"  # a segment corruption that takes the model's input_noise


@dataclass(frozen=True)
class Segment:
    """A run of ``size`` visible units.

    Args:
        name: how data dicts, ``clamp`` and ``predict_proba`` refer to it.
        size: the number of units (k classes for a categorical segment).
        reconstruction: 'bernoulli', 'gaussian', walkback.Gaussian(sigma) or 'categorical'
            (a one-hot class label under a softmax).
        corruption: "default" (the model's ``input_noise``), None, or a walkback corruption.
        weight: the factor of this segment's NLL in the walk-back loss (0: not trained on,
            as a discriminant GSN's input; alpha: a hybrid GSN's input).
        clamped: held at the data through training's walk (a discriminant GSN's input).
    """

    name: str
    size: int
    reconstruction: object = "bernoulli"
    corruption: object = DEFAULT
    weight: float = 1.0
    clamped: bool = False

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"Segment.name: expected a non-empty string, got {self.name!r}")
        object.__setattr__(self, "size", _checks.check_int("Segment.size", self.size, 1, 2**31 - 1))
        rec = as_reconstruction(self.reconstruction, "Segment.reconstruction", categorical=True)
        object.__setattr__(self, "reconstruction", rec)
        if rec.name == "categorical" and self.size < 2:
            raise ValueError(f"Segment {self.name!r}: a categorical segment needs >= 2 classes")
        if not (isinstance(self.corruption, str) and self.corruption == DEFAULT):
            object.__setattr__(
                self, "corruption", as_corruption(self.corruption, "Segment.corruption")
            )
        try:
            w = float(self.weight)
        except (TypeError, ValueError) as e:
            raise TypeError(f"Segment.weight: expected a number >= 0, got {self.weight!r}") from e
        if not (w >= 0.0 and np.isfinite(w)):
            raise ValueError(f"Segment.weight: expected a finite number >= 0, got {w}")
        object.__setattr__(self, "weight", w)
        if not isinstance(self.clamped, (bool, np.bool_)):
            raise TypeError(f"Segment.clamped: expected True or False, got {self.clamped!r}")
        object.__setattr__(self, "clamped", bool(self.clamped))

    @property
    def categorical(self) -> bool:
        return self.reconstruction.name == "categorical"

    def resolved(self, input_noise: Corruption) -> Segment:
        """This segment with the "default" corruption replaced by the model's input noise."""
        if isinstance(self.corruption, str):
            return Segment(
                self.name, self.size, self.reconstruction, input_noise, self.weight, self.clamped
            )
        return self

    def to_config(self) -> dict:
        c = self.corruption
        return {
            "name": self.name,
            "size": self.size,
            "reconstruction": self.reconstruction.to_config(),
            "corruption": c if isinstance(c, str) else c.to_config(),
            "weight": self.weight,
            "clamped": self.clamped,
        }

    @classmethod
    def from_config(cls, cfg: dict) -> Segment:
        c = cfg["corruption"]
        return cls(
            cfg["name"],
            cfg["size"],
            reconstruction_from_config(cfg["reconstruction"]),
            c if isinstance(c, str) else corruption_from_config(c),
            cfg["weight"],
            cfg["clamped"],
        )


def as_segments(visible, reconstruction) -> tuple:
    """An int D (one segment "x" with ``reconstruction``) or a list of Segments."""
    if isinstance(visible, (int, np.integer)) and not isinstance(visible, bool):
        return (Segment("x", int(visible), reconstruction),)
    if isinstance(visible, Segment):
        visible = [visible]
    try:
        segs = tuple(visible)
    except TypeError as e:
        raise TypeError(
            f"visible: expected an int or a list of walkback.Segment, got {visible!r}"
        ) from e
    if not segs or not all(isinstance(s, Segment) for s in segs):
        raise TypeError(f"visible: expected an int or a list of walkback.Segment, got {visible!r}")
    names = [s.name for s in segs]
    if len(set(names)) != len(names):
        raise ValueError(f"visible: segment names must be distinct, got {names}")
    return segs


def offsets(segs) -> list:
    out, o = [], 0
    for s in segs:
        out.append(o)
        o += s.size
    return out
