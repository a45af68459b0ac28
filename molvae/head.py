"""Refit a trained model's property head on many encoded molecules (``molvae fit-head``).

The head trained with the VAE sees each epoch's molecules once per epoch and is kept small so
that it shapes z without costing reconstruction. After training the encoder is fixed, so a larger
head can be fitted on the encodings of far more molecules than an epoch holds: the encoder means
and RDKit's values are computed once, then an MLP ``mu -> normalized properties`` is trained with
a held-out split, early stopping and the best epoch kept. The new head replaces the old one in the
checkpoint; ``molvae optimize`` follows it for the objectives it covers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
from collections.abc import Sequence, Set
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from molvae.checkpoint import LoadedModel
from molvae.chem import PROPERTIES, property_table
from molvae.data import excluded_mask
from molvae.metrics import r2_and_mae
from molvae.model import MolVAE, property_head
from molvae.sample import encode_smiles

__all__ = ["HeadFit", "encode_and_label", "fit_head_weights", "fit_property_head"]

log = logging.getLogger(__name__)


@dataclass
class HeadFit:
    """A fitted head and how well it reads the held-out molecules."""

    head: nn.Sequential  # z -> normalized properties (eval mode)
    mean: torch.Tensor  # (P,) label mean of the training split
    std: torch.Tensor  # (P,) label standard deviation of the training split
    validation: torch.Tensor  # (Nv,) rows of z held out
    figures: dict[str, float]  # train/validation sizes, epochs, val_r2_<name>, val_mae_<name>

    def predict(self, z: torch.Tensor) -> torch.Tensor:
        """Predictions (N, P) in the labels' own units."""
        with torch.no_grad():
            return self.head(z) * self.std + self.mean


def encode_and_label(loaded: LoadedModel, smiles: Sequence[str], names: Sequence[str], workers: int | None = 0,
                     exclude: Set[str] = frozenset()) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
    """Encoder means (N, Z) and RDKit values (N, P) of the molecules the model can read, RDKit can
    score and whose standardized SMILES is not in ``exclude``, and how many were dropped for each."""
    encoded = encode_smiles(loaded, smiles, workers=workers)
    hit = excluded_mask(encoded.smiles, set(exclude), loaded.standardize_options)
    allowed = [row for row, excluded in enumerate(hit) if not excluded]  # excluded ones are not scored
    rows = property_table([encoded.smiles[row] for row in allowed], names, workers, "computing properties")
    y = torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(names))  # (N', P)
    scored = torch.isfinite(y).all(dim=1)  # (N',)
    counts = {"not_encoded": float(len(smiles) - len(encoded.smiles)), "not_scored": float((~scored).sum()),
              "excluded": float(len(encoded.smiles) - len(allowed))}
    return encoded.mu[allowed][scored], y[scored], counts


def fit_head_weights(z: torch.Tensor, y: torch.Tensor, names: Sequence[str], *, hidden: int = 256,
                     layers: int = 2, epochs: int = 60, batch_size: int = 512, learning_rate: float = 2e-3,
                     weight_decay: float = 1e-4, validation_fraction: float = 0.05, patience: int = 8,
                     seed: int = 0) -> HeadFit:
    """Train a head on latent points z (N, Z) and raw values y (N, P).

    A seeded ``validation_fraction`` is held out; labels are normalized on the rest; AdamW with a
    cosine learning rate; the epoch with the lowest held-out MSE is kept and training stops after
    ``patience`` epochs without a better one.
    """
    if z.ndim != 2 or y.ndim != 2 or z.size(0) != y.size(0) or y.size(1) != len(names):
        raise ValueError(f"need z (N, Z) and y (N, {len(names)}), got {tuple(z.shape)} and {tuple(y.shape)}")
    n = z.size(0)
    n_valid = max(1, int(round(n * validation_fraction)))
    if n - n_valid < 10:
        raise ValueError(f"need at least {10 + n_valid} labelled molecules to fit a head, got {n}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    valid, train = order[:n_valid], order[n_valid:]
    mean, std = y[train].mean(dim=0), y[train].std(dim=0).clamp(min=1e-6)  # (P,) each
    z_train, y_train = z[train], (y[train] - mean) / std  # (Nt, Z), (Nt, P)
    z_valid, y_valid = z[valid], (y[valid] - mean) / std  # (Nv, Z), (Nv, P)

    torch.manual_seed(seed)  # the head's initialization
    head = property_head(z.size(1), hidden, layers, len(names))
    optimizer = torch.optim.AdamW(head.parameters(), lr=learning_rate, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * steps_per_epoch)
    best_loss, best_state, best_epoch, epoch = math.inf, None, 0, 0
    bar = tqdm(range(1, epochs + 1), desc="fitting the head", unit="epoch",
               disable=None if len(train) * epochs >= 1_000_000 else True)
    for epoch in bar:
        head.train()
        for batch in torch.randperm(len(train), generator=generator).split(batch_size):
            loss = (head(z_train[batch]) - y_train[batch]).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        head.eval()
        with torch.no_grad():
            valid_loss = float((head(z_valid) - y_valid).pow(2).mean())
        bar.set_postfix(val_mse=f"{valid_loss:.4f}")
        if valid_loss < best_loss:
            best_loss, best_epoch = valid_loss, epoch
            best_state = {k: v.clone() for k, v in head.state_dict().items()}
        elif epoch - best_epoch >= patience:
            break
    if best_state is None:
        raise ValueError("the head's held-out error is not finite: are the property values finite and not huge?")
    head.load_state_dict(best_state)
    head.eval().requires_grad_(False)
    fit = HeadFit(head, mean, std, valid, {"train_molecules": float(len(train)), "validation_molecules": float(n_valid),
                                           "epochs": float(epoch), "best_epoch": float(best_epoch)})
    predicted = fit.predict(z[valid])  # (Nv, P)
    for column, name in enumerate(names):
        fit.figures[f"val_r2_{name}"], fit.figures[f"val_mae_{name}"] = r2_and_mae(y[valid, column],
                                                                                   predicted[:, column])
    return fit


def _cache_key(loaded: LoadedModel, smiles: Sequence[str], names: Sequence[str], exclude: Set[str]) -> str:
    """What the encodings and labels depend on: the encoder's weights, the molecules, the properties."""
    digest = hashlib.sha256()
    for key, tensor in loaded.model.state_dict().items():
        if key.startswith(("embedding.", "encoder.", "to_mu.")):
            digest.update(key.encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    for part in (list(names), list(smiles), sorted(exclude)):
        digest.update("\n".join(part).encode())
        digest.update(b"\0")
    return digest.hexdigest()


def fit_property_head(loaded: LoadedModel, smiles: Sequence[str], names: Sequence[str], *, hidden: int = 256,
                      layers: int = 2, epochs: int = 60, seed: int = 0, workers: int | None = 0,
                      exclude: Set[str] = frozenset(), cache: str | os.PathLike | None = None,
                      **training) -> tuple[MolVAE, dict[str, float]]:
    """A copy of ``loaded.model`` whose property head predicts ``names`` (RDKit properties), fitted on
    the encodings of ``smiles`` (less those in ``exclude``, standardized SMILES), and its figures:
    molecules used and dropped, and per property the held-out R² and MAE of the new head
    (``val_r2_<name>``) and, where the old head covered it, of the old one on the same molecules
    (``old_r2_<name>``). ``cache``: a file keeping the encodings and labels, reused by a later call
    with the same encoder, molecules and properties (e.g. to try another head size)."""
    unknown = [name for name in names if name not in PROPERTIES]
    if not names or unknown:
        raise ValueError(f"properties must be among {', '.join(PROPERTIES)}; got {unknown or 'none'}")
    if len(set(names)) != len(names):
        raise ValueError(f"properties named twice: {list(names)}")
    key = _cache_key(loaded, smiles, names, exclude) if cache else ""
    held = torch.load(cache, weights_only=True) if cache and Path(cache).is_file() else {}
    if held and held.get("key") == key:
        z, y, dropped = held["z"], held["y"], held["dropped"]
        log.info("encodings and labels of %d molecules reused from %s", len(z), cache)
    else:
        z, y, dropped = encode_and_label(loaded, smiles, names, workers, exclude)
        if cache:
            Path(cache).parent.mkdir(parents=True, exist_ok=True)
            torch.save({"key": key, "z": z, "y": y, "dropped": dropped}, cache)
    log.info("%d molecules encoded and labelled; dropped: %s", len(z),
             ", ".join(f"{n:.0f} {reason.replace('_', ' ')}" for reason, n in dropped.items()))
    fit = fit_head_weights(z, y, names, hidden=hidden, layers=layers, epochs=epochs, seed=seed, **training)
    figures = {"molecules": float(len(z)), **{f"dropped_{k}": v for k, v in dropped.items()}, **fit.figures}

    old_names = list(loaded.model.config.property_names)
    if old_names:
        with torch.no_grad():
            old = loaded.model.predict_properties(z[fit.validation].to(loaded.device)).cpu()  # (Nv, P_old)
        for column, name in enumerate(names):
            if name in old_names:
                figures[f"old_r2_{name}"], figures[f"old_mae_{name}"] = r2_and_mae(
                    y[fit.validation, column], old[:, old_names.index(name)])

    config = dataclasses.replace(loaded.model.config, property_names=list(names), property_hidden=hidden,
                                 property_layers=layers)
    model = MolVAE(config)
    state = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("property_")}
    state.update({f"property_head.{k}": v for k, v in fit.head.state_dict().items()})
    state["property_mean"], state["property_std"] = fit.mean, fit.std
    model.load_state_dict(state)
    return model.eval(), figures
