"""Model files: safetensors (tensors plus a JSON configuration in the metadata, and a SHA-256
of the tensors' bytes so that a damaged file is found). Loading parses the header and the
tensors; it never runs code."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from . import _model

FORMAT = "walkback-model"
VERSION = "1"


def _digest(tensors: dict, kind, config) -> str:
    """SHA-256 over the model's kind, its configuration (the JSON text) and the tensors in
    name order: each name, dtype, shape and bytes."""
    h = hashlib.sha256()
    h.update(f"{kind}|{config}|".encode())
    for name in sorted(tensors):
        t = np.ascontiguousarray(tensors[name])
        h.update(f"{name}|{t.dtype.str}|{t.shape}|".encode())
        h.update(t.tobytes())
    return h.hexdigest()


def _check_tensors(path, model, tensors: dict) -> None:
    expected = model.param_shapes()
    if set(tensors) != set(expected):
        raise ValueError(
            f"load: {path} holds tensors {sorted(tensors)}, expected {sorted(expected)}"
        )
    for k, t in tensors.items():
        if t.dtype != model.dtype:
            raise ValueError(
                f"load: {path}: tensor {k} has dtype {t.dtype}, expected {model.dtype}"
            )
        if tuple(t.shape) != tuple(expected[k]):
            raise ValueError(
                f"load: {path}: {k}: expected shape {tuple(expected[k])}, got {tuple(t.shape)}"
            )


def _models() -> dict:
    from .dae import DAE
    from .diffusion import Diffusion
    from .gsn import GSN
    from .sequence_gsn import SequenceGSN
    from .shaped_chain import ShapedChain

    return {
        "DAE": DAE,
        "GSN": GSN,
        "Diffusion": Diffusion,
        "SequenceGSN": SequenceGSN,
        "ShapedChain": ShapedChain,
    }


def check_save_path(path) -> str:
    """The path as a string, if a file can be written there: not a folder, in a folder that
    exists (else IsADirectoryError or FileNotFoundError)."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"save: {path} is a folder; expected a file name")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"save: the folder {folder} does not exist")
    return path


def save(model, path) -> None:
    """Saves ``model`` to ``path`` (a .safetensors file)."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file

    kind = type(model).__name__
    if kind not in _models():
        raise TypeError(f"save: cannot save a {kind}")
    tensors = {k: np.ascontiguousarray(v) for k, v in model._host_params().items()}
    for k, v in tensors.items():  # load refuses them: a file that cannot be read back
        if not np.all(np.isfinite(v)):
            raise ValueError(f"save: parameter {k} contains NaN or infinite values")
    config = json.dumps(model.to_config())
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model": kind,
        "config": config,
        "sha256": _digest(tensors, kind, config),
    }
    path = check_save_path(path)
    try:
        save_file(tensors, path, metadata=meta)
    except SafetensorError as e:  # safetensors' own error says little about the cause
        raise OSError(f"save: could not write {path}: {e}") from e


def load(path):
    """Loads a model saved by ``save``. Raises ValueError for a file that is not a walkback
    model, is truncated or altered, or whose tensors do not match its configuration."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"load: {path} is a folder, not a model file")
    if not os.path.exists(path):
        raise FileNotFoundError(f"load: no such file: {path}")
    if not os.path.isfile(path):
        raise ValueError(f"load: {path} is not a regular file")
    try:
        with safe_open(path, framework="numpy") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"load: {path} is not a readable safetensors file ({e})") from e
    if meta.get("format") != FORMAT:
        raise ValueError(f"load: {path} is a safetensors file but not a walkback model")
    if meta.get("version") != VERSION:
        raise ValueError(f"load: unsupported walkback model version {meta.get('version')!r}")
    cls = _models().get(meta.get("model"))
    if cls is None:
        raise ValueError(f"load: unknown model kind {meta.get('model')!r}")
    # Files written before the checksum (walkback 0.1.0's first sessions) have none.
    if "sha256" in meta and meta["sha256"] != _digest(tensors, meta["model"], meta.get("config")):
        raise ValueError(
            f"load: {path} is damaged or altered: its tensors and configuration do not match "
            "their checksum"
        )
    try:
        cfg = json.loads(meta["config"])
        # First without parameters: the configuration's sizes are checked against the file's
        # tensors before anything of those sizes is allocated.
        with _model.params_from_file():
            shell = cls.from_config(cfg)
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
        IndexError,
        MemoryError,
        OverflowError,
        RecursionError,
    ) as e:
        # Whatever a damaged or crafted configuration makes the constructor raise (JSON errors
        # are ValueErrors); a configuration too large to build is damaged too.
        raise ValueError(f"load: {path} has a damaged configuration ({e!r})") from e
    _check_tensors(path, shell, tensors)
    # Then as the constructor builds it (its generator draws the initial weights, so a loaded
    # model's seed=None calls go as a fresh one's would); the sizes are the file's now.
    model = cls.from_config(cfg)
    try:
        model.set_params(**tensors)  # checks shapes and finiteness
    except ValueError as e:
        raise ValueError(f"load: {path}: {e}") from e
    return model
