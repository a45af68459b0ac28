"""One self-describing checkpoint file: format version, configs, vocabulary, weights.

Every field is a tensor, number, string, list or dict, so the file loads with
``torch.load(..., weights_only=True)``; nothing is pickled.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch

from molvae.chem import SELFIES_CONSTRAINTS, StandardizeOptions
from molvae.data import DataConfig
from molvae.errors import CheckpointError
from molvae.files import write_atomically
from molvae.model import ModelConfig, MolVAE
from molvae.trainset import TrainingSetIndex
from molvae.vocab import Vocabulary

__all__ = ["FORMAT_VERSION", "PRETRAINED", "PRETRAINED_LEAD", "CheckpointError", "LoadedModel", "load_model",
           "read_checkpoint", "save_checkpoint"]

FORMAT = "molvae-checkpoint"
# The two models shipped inside the package (see molvae/pretrained/MODEL_CARD.md), used when no model is
# given: PRETRAINED samples molecules like its training data (sample, fine-tuning); PRETRAINED_LEAD
# reconstructs molecules more closely and carries the refitted property head, so it reads and
# optimizes the user's molecules (optimize, encode, reconstruct, interpolate, ...).
PRETRAINED = Path(__file__).parent / "pretrained" / "model.pt"
PRETRAINED_LEAD = PRETRAINED.with_name("lead.pt")
FORMAT_VERSION = 1


@dataclass
class LoadedModel:
    """A model ready for inference, with what is needed to use it."""

    model: MolVAE
    vocab: Vocabulary
    max_length: int  # longest token sequence (with BOS/EOS) to generate
    meta: dict[str, Any]  # data hash, training summary, configs, versions

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def data_config(self) -> DataConfig:
        """The ``[data]`` settings the model was trained with (defaults where a checkpoint lacks them)."""
        recorded = self.meta.get("config", {}).get("data", {})
        known = {f.name for f in fields(DataConfig)}
        return DataConfig(**{key: value for key, value in recorded.items() if key in known})

    @property
    def standardize_options(self) -> StandardizeOptions:
        """How input molecules are cleaned for this model: as its training data was (stereochemistry
        kept or dropped, neutralization), without the training-time size limit."""
        return replace(self.data_config.standardize_options(), max_heavy_atoms=10**6)

    @property
    def training_index(self) -> TrainingSetIndex | None:
        """Hashes of the training molecules carried by the checkpoint (None for older checkpoints)."""
        hashes = self.meta.get("training_hashes")
        return TrainingSetIndex(hashes) if isinstance(hashes, torch.Tensor) else None

    @property
    def ring_sizes(self) -> frozenset[int] | None:
        """The ring sizes of the training molecules (None for checkpoints that do not record them)."""
        sizes = self.meta.get("ring_sizes")
        return frozenset(int(size) for size in sizes) if sizes is not None else None

    @property
    def training_sample(self) -> list[str] | None:
        """A random sample of the training molecules carried by the checkpoint (None for older checkpoints)."""
        sample = self.meta.get("training_sample")
        return list(sample) if sample else None

    @property
    def data_path(self) -> str | None:
        """The training data file, if it can be found: as recorded, or (for a relative path, as in
        the shipped pretrained model) relative to the molvae source tree."""
        recorded = self.meta.get("data_path")
        if not recorded or Path(recorded).exists():
            return recorded
        beside_source = Path(__file__).resolve().parent.parent / recorded
        return str(beside_source) if not Path(recorded).is_absolute() and beside_source.exists() else recorded


def save_checkpoint(path: str | os.PathLike, model: MolVAE, vocab: Vocabulary, max_length: int,
                    meta: dict[str, Any] | None = None, train_state: dict[str, Any] | None = None) -> Path:
    """Write the checkpoint atomically (temporary file + rename): a crash never leaves half a file."""
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_config": asdict(model.config),
        "vocab": vocab.to_dict(),
        "selfies_constraints": SELFIES_CONSTRAINTS,
        "max_length": int(max_length),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "meta": meta or {},
        "train_state": train_state,
    }
    write_atomically(path, lambda f: torch.save(payload, f))
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The raw checkpoint payload, checked for format and version."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several unrelated types for foreign files
        raise CheckpointError(f"{path}: not a readable molvae checkpoint ({type(err).__name__}: {err})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a molvae checkpoint")
    if payload.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {payload.get('format_version')}, this molvae reads {FORMAT_VERSION}")
    if payload.get("selfies_constraints") != SELFIES_CONSTRAINTS:
        raise CheckpointError(f"{path}: trained under SELFIES constraints {payload.get('selfies_constraints')!r}")
    return payload


def model_from_payload(payload: dict[str, Any]) -> tuple[MolVAE, Vocabulary]:
    known = {f.name for f in fields(ModelConfig)}
    # checkpoints from before learned priors had N(0, I); from before exemplar priors, none
    recorded = {"prior": "gaussian", "exemplars": 0, **payload["model_config"]}
    config = ModelConfig(**{k: v for k, v in recorded.items() if k in known})
    vocab = Vocabulary.from_dict(payload["vocab"])
    if config.vocab_size != len(vocab):
        raise CheckpointError(f"model vocab_size {config.vocab_size} != vocabulary size {len(vocab)}")
    try:
        model = MolVAE(config)
        model.load_state_dict(payload["state_dict"])
    except (ValueError, RuntimeError) as err:  # an unknown prior, weights that do not fit the architecture
        raise CheckpointError(f"checkpoint does not fit this molvae's model: {err}") from None
    return model, vocab


def load_model(path: str | os.PathLike, device: str | torch.device = "cpu") -> LoadedModel:
    """Load a checkpoint for inference (eval mode) on ``device``."""
    payload = read_checkpoint(path)
    model, vocab = model_from_payload(payload)
    model.to(device).eval()
    return LoadedModel(model, vocab, payload["max_length"], payload["meta"])
