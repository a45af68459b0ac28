"""What a checkpoint carries of its training data, so that novelty and surrogates never re-read it.

:class:`TrainingSetIndex` answers "was this canonical SMILES in the training set?" from sorted
64-bit hashes (8 bytes a molecule: 300,000 molecules are 2.4 MB); a false "yes" needs two distinct
molecules with the same 64-bit BLAKE2b digest, about one chance in 10^8 for a million-molecule
set against a million samples.

>>> index = TrainingSetIndex.from_smiles(["CCO", "c1ccccc1"])
>>> "CCO" in index, "CCN" in index, len(index)
(True, False, 2)
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence

import torch

__all__ = ["TRAINING_SAMPLE_SIZE", "TrainingSetIndex", "smiles_hash", "training_sample"]

TRAINING_SAMPLE_SIZE = 20000  # training molecules a checkpoint carries for surrogates and reference work


def smiles_hash(smiles: str) -> int:
    """Signed 64-bit BLAKE2b digest of a SMILES string."""
    return int.from_bytes(hashlib.blake2b(smiles.encode(), digest_size=8).digest(), "little", signed=True)


class TrainingSetIndex:
    """Membership test of canonical SMILES against a training set, by sorted 64-bit hashes."""

    def __init__(self, hashes: torch.Tensor):
        self.hashes = torch.unique(hashes.to(torch.int64).flatten())  # sorted, distinct

    @classmethod
    def from_smiles(cls, smiles: Iterable[str]) -> TrainingSetIndex:
        return cls(torch.tensor([smiles_hash(s) for s in smiles], dtype=torch.int64))

    def __len__(self) -> int:
        return self.hashes.numel()

    def __contains__(self, smiles: object) -> bool:
        if not isinstance(smiles, str) or not len(self):
            return False
        key = torch.tensor([smiles_hash(smiles)], dtype=torch.int64)
        position = int(torch.searchsorted(self.hashes, key).item())
        return position < len(self) and int(self.hashes[position]) == int(key)


def training_sample(smiles: Sequence[str], n: int = TRAINING_SAMPLE_SIZE, seed: int = 0) -> list[str]:
    """A seeded random sample of at most ``n`` training molecules, in a stable order."""
    if len(smiles) <= n:
        return list(smiles)
    return [smiles[i] for i in sorted(random.Random(seed).sample(range(len(smiles)), n))]


def read_training_smiles(path: str | None, config=None) -> list[str] | None:
    """Canonical SMILES of a training file in file order, cleaned as ``config`` (a
    :class:`~molvae.data.DataConfig`, default: the defaults) says and cached by content hash, so a
    model's own data config finds the copy prepared for its training; None when there is no such file."""
    import dataclasses
    import logging
    from pathlib import Path

    from molvae.data import DataConfig, prepare

    if not path:
        return None
    if not Path(path).exists():
        logging.getLogger(__name__).warning("training data %s not found: novelty is not computed", path)
        return None
    config = dataclasses.replace(config or DataConfig(), max_reject_fraction=1.0)
    return prepare(path, config).kept["smiles"].tolist()


def read_training_set(path: str | None, config=None) -> set[str] | None:
    """:func:`read_training_smiles` as a set, for novelty."""
    smiles = read_training_smiles(path, config)
    return None if smiles is None else set(smiles)


def novelty_reference(loaded, path: str | None = None) -> TrainingSetIndex | set[str] | None:
    """What generated molecules are checked against for novelty: the file ``path`` when given, else
    the hashes the checkpoint carries, else (older checkpoints) the model's training file, re-read."""
    if path:
        return read_training_set(path)
    index = loaded.training_index
    if index is not None:
        return index
    if loaded.data_path:
        import logging

        logging.getLogger(__name__).info("this checkpoint carries no training-set hashes (made before molvae 0.2): "
                                         "reading its training file %s for novelty", loaded.data_path)
    return read_training_set(loaded.data_path, loaded.data_config)


def surrogate_molecules(loaded) -> list[str] | None:
    """Training molecules to fit a property surrogate on: the sample the checkpoint carries, else
    (older checkpoints) the model's training file, re-read."""
    return loaded.training_sample or read_training_smiles(loaded.data_path, loaded.data_config)
