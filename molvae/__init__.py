"""molvae: a SELFIES GRU VAE for molecule generation and latent-space property optimization.

>>> import molvae
>>> model = molvae.load()          # the shipped sampling model; molvae.load("lead") reads molecules
>>> len(model.sample(10, seed=0))
10

See :mod:`molvae.api` for the whole Python API; nothing heavy is imported until it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
__all__ = ["BUNDLED_DATA", "Model", "__version__", "evaluate", "load", "score_objective", "train"]

# 25,000 MOSES training molecules bundled with the source tree (data/README.md): the default data
# of the quickstart and the bench, and the surrogate data of the pretrained model in a fresh clone.
BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data" / "moses_sample_25k.csv"

if TYPE_CHECKING:
    from molvae.api import Model, evaluate, load, score_objective, train

_API = {"Model", "evaluate", "load", "score_objective", "train"}


def __getattr__(name: str) -> Any:
    """The API's names, imported on first use (``import molvae`` stays cheap: no torch, no RDKit)."""
    if name in _API:
        from molvae import api

        return getattr(api, name)
    raise AttributeError(f"module 'molvae' has no attribute {name!r}")
