"""Property predictors on z: the model's joint head or an ensemble of MLPs fitted on encoded molecules,
and the score a surrogate's predictions give (the objectives' desirabilities on tensors)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from molvae.checkpoint import LoadedModel
from molvae.chem import to_mol
from molvae.metrics import r2_and_mae
from molvae.objectives import Objective, desirability, scorer_for
from molvae.optimize.config import OptimizeConfig
from molvae.sample import encode_smiles

log = logging.getLogger(__name__)


# --- surrogates -----------------------------------------------------------------------------

class Surrogate(Protocol):
    """A property predictor on the latent space."""

    labels: tuple[str, ...]  # objective labels (Objective.label) of the output columns, in order

    def members(self, z: torch.Tensor) -> torch.Tensor:
        """Raw property predictions (K, N, P) of K members for latent points z (N, Z); differentiable in z."""
        ...


class HeadSurrogate:
    """The model's jointly trained property head: one member (std 0), predictions in label units."""

    def __init__(self, loaded: LoadedModel, labels: Sequence[str]):
        names = list(loaded.model.config.property_names)
        missing = [label for label in labels if label not in names]
        if missing:
            raise ValueError(f"the model's property head predicts {names or 'nothing'}, not {missing}")
        self.model = loaded.model
        self.labels = tuple(labels)
        self.columns = [names.index(label) for label in labels]

    def members(self, z: torch.Tensor) -> torch.Tensor:
        return self.model.predict_properties(z)[:, self.columns].unsqueeze(0)  # (1, N, P)


class EnsembleSurrogate(nn.Module):
    """``K`` MLPs ``z -> normalized properties`` (two SiLU hidden layers), stored as stacked
    weights so that all members run in one batched matrix product; each member is trained on
    its own bootstrap sample from its own initialization."""

    def __init__(self, latent_dim: int, labels: Sequence[str], n_members: int = 5, hidden: int = 128,
                 seed: int = 0):
        super().__init__()
        self.labels = tuple(labels)
        n_props = len(self.labels)
        generator = torch.Generator().manual_seed(seed)
        sizes = [(latent_dim, hidden), (hidden, hidden), (hidden, n_props)]

        def uniform(shape: tuple[int, ...], fan_in: int) -> nn.Parameter:  # nn.Linear's default initialization
            bound = 1.0 / math.sqrt(fan_in)
            return nn.Parameter((torch.rand(shape, generator=generator) * 2 - 1) * bound)

        self.weights = nn.ParameterList(uniform((n_members, i, o), i) for i, o in sizes)  # (K, in, out) each
        self.biases = nn.ParameterList(uniform((n_members, 1, o), i) for i, o in sizes)  # (K, 1, out) each
        self.register_buffer("label_mean", torch.zeros(n_props))
        self.register_buffer("label_std", torch.ones(n_props))

    @property
    def n_members(self) -> int:
        return self.weights[0].size(0)

    def normalized(self, x: torch.Tensor) -> torch.Tensor:
        """Normalized predictions (K, B, P) of each member for its own inputs x (K, B, Z)."""
        h = x
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(bias, h, weight)  # (K, B, out)
            if layer < len(self.weights) - 1:
                h = nn.functional.silu(h)
        return h

    def members(self, z: torch.Tensor) -> torch.Tensor:
        x = z.unsqueeze(0).expand(self.n_members, -1, -1)  # (K, N, Z)
        return self.normalized(x) * self.label_std + self.label_mean  # (K, N, P) label units


def surrogate_training_data(loaded: LoadedModel, smiles: Sequence[str], objectives: Sequence[Objective],
                            labels: Mapping[str, Sequence[float]] | None = None, max_molecules: int = 2000,
                            seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Latent means (N, Z) and raw objective values (N, P) of up to ``max_molecules`` molecules.

    A random (seeded) sample of ``smiles`` is encoded; each objective's value comes from
    ``labels[objective.label]`` (a numeric column of the user's file, aligned with ``smiles``)
    when given, else from the objective's own RDKit / custom scorer. Molecules the model cannot
    encode or without a finite value are dropped. These labels are computed offline on existing
    molecules; they are not oracle calls.
    """
    labels = labels or {}
    order = torch.randperm(len(smiles), generator=torch.Generator().manual_seed(seed))[:max_molecules].tolist()
    chosen = [smiles[i] for i in order]
    encoded = encode_smiles(loaded, chosen)
    scorers = {o.label: scorer_for(o) for o in objectives if o.label not in labels}
    rows, keep = [], []
    for row, (position, canonical) in enumerate(zip(encoded.index, encoded.smiles)):
        mol = to_mol(canonical)
        values = []
        for objective in objectives:
            if objective.label in labels:
                value = labels[objective.label][order[position]]
            else:
                value = scorers[objective.label](mol)
            values.append(float("nan") if value is None else float(value))
        if all(math.isfinite(v) for v in values):
            rows.append(values)
            keep.append(row)
    y = torch.tensor(rows, dtype=torch.float32).reshape(len(rows), len(objectives))  # (N, P)
    return encoded.mu[keep], y


def fit_ensemble(z: torch.Tensor, y: torch.Tensor, labels: Sequence[str], n_members: int = 5, hidden: int = 128,
                 epochs: int = 150, batch_size: int = 256, learning_rate: float = 2e-3, weight_decay: float = 1e-4,
                 validation_fraction: float = 0.1, seed: int = 0,
                 device: torch.device | str = "cpu") -> tuple[EnsembleSurrogate, dict[str, float]]:
    """Train an :class:`EnsembleSurrogate` on latent points z (N, Z) and raw values y (N, P).

    A seeded ``validation_fraction`` is held out; each member is trained on a bootstrap sample
    of the rest with its own initialization. Returns the ensemble (eval mode, on ``device``) and
    held-out metrics of the ensemble mean per label: ``val_mae_<label>``, ``val_r2_<label>``.
    """
    if z.ndim != 2 or y.ndim != 2 or z.size(0) != y.size(0) or y.size(1) != len(labels):
        raise ValueError(f"need z (N, Z) and y (N, {len(labels)}), got {tuple(z.shape)} and {tuple(y.shape)}")
    n = z.size(0)
    if n < 10:
        raise ValueError(f"need at least 10 labelled molecules to fit a surrogate, got {n}")
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    n_valid = max(1, int(round(n * validation_fraction)))
    valid, train = order[:n_valid], order[n_valid:]
    ensemble = EnsembleSurrogate(z.size(1), labels, n_members, hidden, seed=seed)
    mean = y[train].mean(dim=0)  # (P,)
    std = y[train].std(dim=0).clamp(min=1e-6)  # (P,)
    ensemble.label_mean.copy_(mean)
    ensemble.label_std.copy_(std)
    ensemble.to(device)
    z_train, y_train = z[train].to(device), ((y[train] - mean) / std).to(device)  # (Nt, Z), (Nt, P)
    n_train = len(train)
    bootstrap = torch.randint(0, n_train, (n_members, n_train), generator=generator).to(device)  # (K, Nt)
    optimizer = torch.optim.AdamW(ensemble.parameters(), lr=learning_rate, weight_decay=weight_decay)
    for _ in tqdm(range(epochs), desc="fitting the surrogate", unit="epoch", leave=False,
                  disable=None if n_train * epochs >= 2_000_000 else True):
        shuffle = torch.rand(n_members, n_train, generator=generator).argsort(dim=1).to(device)  # (K, Nt)
        epoch_index = bootstrap.gather(1, shuffle)  # (K, Nt) each member's own order of its own sample
        for start in range(0, n_train, batch_size):
            batch = epoch_index[:, start : start + batch_size]  # (K, B)
            predicted = ensemble.normalized(z_train[batch])  # (K, B, P)
            loss = (predicted - y_train[batch]).pow(2).mean(dim=(1, 2)).sum()  # members independent
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    ensemble.eval()
    ensemble.requires_grad_(False)
    with torch.no_grad():
        predicted = ensemble.members(z[valid].to(device)).mean(dim=0).cpu()  # (Nv, P)
    metrics: dict[str, float] = {"train_molecules": float(len(train)), "validation_molecules": float(n_valid)}
    for column, label in enumerate(labels):
        metrics[f"val_r2_{label}"], metrics[f"val_mae_{label}"] = r2_and_mae(y[valid, column], predicted[:, column])
    return ensemble, metrics


def build_surrogate(loaded: LoadedModel, objectives: Sequence[Objective], kind: str = "auto",
                    smiles: Sequence[str] | None = None, labels: Mapping[str, Sequence[float]] | None = None,
                    config: OptimizeConfig | None = None) -> tuple[Surrogate | None, dict[str, Any]]:
    """The property predictor the optimizers use, and a description of it.

    ``kind``: ``head`` (the checkpoint's joint head; it must predict every objective), ``ensemble``
    (MLPs fitted on encodings of ``smiles``, see :func:`surrogate_training_data`), ``none``, or
    ``auto``: the head when it covers every objective, else an ensemble when ``smiles`` are
    given, else none.
    """
    config = config or OptimizeConfig()
    wanted = [o.label for o in objectives]
    head_names = set(loaded.model.config.property_names)
    if kind == "auto":
        kind = "head" if set(wanted) <= head_names else ("ensemble" if smiles else "none")
    if kind == "none":
        return None, {"kind": "none"}
    if kind == "head":  # held-out figures of a head refitted with `molvae fit-head`, when there are any
        fitted = loaded.meta.get("head_fit", {})
        return HeadSurrogate(loaded, wanted), {"kind": "head", "members": 1, **{
            f"val_r2_{label}": fitted[f"val_r2_{label}"] for label in wanted if f"val_r2_{label}" in fitted}}
    if kind != "ensemble":
        raise ValueError(f"surrogate kind must be auto, head, ensemble or none, got {kind!r}")
    if not smiles:
        raise ValueError("an ensemble surrogate needs molecules to train on")
    started = time.perf_counter()
    z, y = surrogate_training_data(loaded, smiles, objectives, labels, config.surrogate_molecules, config.seed)
    ensemble, metrics = fit_ensemble(z, y, wanted, config.surrogate_members, config.surrogate_hidden,
                                     config.surrogate_epochs, seed=config.seed, device=loaded.device)
    info = {"kind": "ensemble", "members": config.surrogate_members, **metrics,
            "fit_seconds": time.perf_counter() - started}
    return ensemble, info


def surrogate_score(objectives: Sequence[Objective], values: torch.Tensor) -> torch.Tensor:
    """The combined score (:func:`molvae.objectives.combined_score`) of raw values (..., P), as a
    differentiable tensor (...). Columns follow ``objectives``.

    >>> from molvae.objectives import parse_objectives
    >>> surrogate_score(parse_objectives("logp:window:2:3"), torch.tensor([[2.5], [4.0]])).tolist()
    [1.0, 0.5]
    """
    if values.size(-1) != len(objectives):
        raise ValueError(f"need {len(objectives)} value columns, got {values.size(-1)}")
    if len(objectives) == 1:
        objective, value = objectives[0], values[..., 0]
        if objective.goal == "max":
            return value
        if objective.goal == "min":
            return -value
        return desirability(objective, value)
    log_sum = torch.zeros_like(values[..., 0])
    for column, objective in enumerate(objectives):
        log_sum = log_sum + objective.weight * torch.log(desirability(objective, values[..., column]).clamp(min=1e-30))
    return torch.exp(log_sum / sum(o.weight for o in objectives))
