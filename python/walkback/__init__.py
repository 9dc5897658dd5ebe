"""walkback: fast Markov-chain generative models (denoising autoencoders as samplers, GSNs,
walk-back training) on C++ and CUDA kernels."""

# Loads libscipy_openblas.so before the extension that links it (the extension's RPATH points
# there too; the import makes a broken install fail here, with a clear message).
import scipy_openblas32 as _scipy_openblas32  # noqa: F401

from . import (
    data,
    eval,  # noqa: A004 - wb.eval is the documented name
    exact,
    ops,
)
from ._backend import cuda_available, cuda_built
from ._config import (
    get_num_threads,
    get_reproducible,
    set_num_threads,
    set_reproducible,
    show_config,
)
from .dae import DAE
from .diffusion import BoundResult, Diffusion
from .gsn import GSN
from .io import load
from .noise import (
    BitFlip,
    GaussianCorruption,
    GaussianNoise,
    Masking,
    NoCorruption,
    SaltAndPepper,
)
from .optim import SGD, Adam, RMSprop
from .reconstruction import Bernoulli, Categorical, Gaussian
from .segments import Segment
from .sequence_gsn import SequenceGSN
from .shaped_chain import ShapedChain
from .training import History, TrainingDiverged

__version__ = "0.1.0"

__all__ = [
    "DAE",
    "BoundResult",
    "Diffusion",
    "RMSprop",
    "GSN",
    "Segment",
    "SequenceGSN",
    "ShapedChain",
    "Categorical",
    "GaussianNoise",
    "SGD",
    "Adam",
    "History",
    "TrainingDiverged",
    "load",
    "Bernoulli",
    "BitFlip",
    "Gaussian",
    "GaussianCorruption",
    "Masking",
    "NoCorruption",
    "SaltAndPepper",
    "cuda_available",
    "cuda_built",
    "data",
    "eval",
    "exact",
    "get_num_threads",
    "ops",
    "set_num_threads",
    "set_reproducible",
    "get_reproducible",
    "show_config",
]
