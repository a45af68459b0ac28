"""Property-guided optimization in latent space: an oracle with a call budget, property
surrogates on z, and optimizers behind one interface.

The pieces:

* :class:`Oracle` -- the only judge. It decodes latent points (greedy, optionally several
  decodes per point), canonicalizes, and scores with the REAL RDKit objective
  (:func:`molvae.objectives.score_smiles`). It keeps a cache of scored molecules and an honest
  account of every decode (:class:`OracleStats`).
* **Oracle call** (the budget unit): one RDKit scoring of a valid molecule (canonical SMILES)
  this oracle has not scored before and that meets the similarity floor. Invalid decodes,
  repeats of an already scored molecule (duplicates) and molecules below the similarity floor
  cost no call and are counted apart. The oracle never makes more than ``budget`` calls; points
  it cannot afford are reported as ``unscored``. A molecule that fails a hard filter has been
  scored (it costs a call) but gets no score.
* Surrogates -- property predictors on z that return ``K`` ensemble members' predictions of the
  objectives' raw values, so a mean and an uncertainty (std over members): the model's jointly
  trained head (:class:`HeadSurrogate`, one member) or an ensemble of MLPs fitted afterwards on
  encoded molecules (:class:`EnsembleSurrogate`, :func:`fit_ensemble`).
* Optimizers, a plain dict :data:`OPTIMIZERS` of functions with one signature
  ``(oracle, surrogate, objectives, config, start) -> None`` that drive the oracle until its
  budget is spent (or ``max_stale_rounds`` rounds in a row score nothing new): ``gradient``
  (ascent on the surrogate with a prior penalty, many starts in parallel), ``bo``
  (Gaussian-process Bayesian optimization with batch acquisition in a TuRBO-style trust region,
  via BoTorch, imported only when BO runs), ``neighbourhood`` (hill climbing around a seed with a
  radius kept where decodes clear the similarity floor; from random starts, a population search
  around the latent points of the best molecules so far) and ``random`` (prior samples: the baseline).
* :func:`optimize` runs methods from random starts; :func:`optimize_leads` optimizes from seed
  molecules under a Tanimoto similarity floor.

Every candidate's surrogate prediction is kept next to its true score, so the gap between the
surrogate and the truth is reported (:func:`surrogate_gap`); results are ranked by the true score.

>>> round(top_k_auc([0.5, 0.9, 0.7], k=1, budget=4, freq=2), 4)
0.675
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import pandas as pd
import torch
from rdkit import DataStructs
from tqdm.auto import tqdm
from torch import nn

from molvae.checkpoint import LoadedModel
from molvae.model import MolVAE
from molvae.chem import (
    canonical_smiles,
    compute_properties,
    decode_selfies_checked_list,
    decode_selfies_list,
    morgan_fingerprint,
    to_mol,
)
from molvae.objectives import (
    SIGMOID_DEFAULTS,
    Filters,
    Objective,
    score_smiles,
    scorer_for,
)
from molvae.sample import REFINE_STEPS, decode_beams, encode_smiles, generate_tokens, rewrite_tokens

__all__ = [
    "OPTIMIZERS",
    "Candidate",
    "EnsembleSurrogate",
    "HeadSurrogate",
    "LeadResult",
    "MethodResult",
    "OptimizationResult",
    "OptimizeConfig",
    "Oracle",
    "OracleStats",
    "PointOutcome",
    "Surrogate",
    "build_surrogate",
    "candidates_table",
    "fit_ensemble",
    "lead_summary",
    "optimize",
    "optimize_config_from_dict",
    "optimize_leads",
    "r2_and_mae",
    "run_bo",
    "run_gradient",
    "run_method",
    "run_random",
    "surrogate_gap",
    "surrogate_score",
    "surrogate_training_data",
    "top_k_auc",
]

log = logging.getLogger(__name__)


# --- configuration --------------------------------------------------------------------------

@dataclass(frozen=True)
class OptimizeConfig:
    """Budget and settings of every optimizer. One TOML table ``[optimize]`` maps onto it."""

    budget: int = 1000  # oracle calls per method (per seed and method in lead optimization)
    batch_size: int = 32  # latent points per round: parallel starts, BO batch size q, random batch
    decodes_per_point: int = 1  # 1 = greedy only; more adds temperature-sampled decodes of the same z
    decode_temperature: float = 0.7  # softmax temperature of the extra decodes
    decode_beam: int = 1  # > 1: instead of the greedy decode, every distinct decode of a beam search this wide
    canonical_decodes: bool = False  # score only decodes that are canonical SELFIES strings (the others are free)
    max_rounds: int = 1000  # stop a method after this many rounds even with budget left
    max_stale_rounds: int = 25  # ... or after this many rounds in a row that scored no new molecule
    seed: int = 0  # seeds starts, noise, BO and extra decodes
    # surrogate (property predictor on z)
    surrogate: str = "auto"  # auto (head if it covers the objectives, else ensemble) | head | ensemble | none
    surrogate_molecules: int = 2000  # encoded molecules the ensemble is trained on
    surrogate_members: int = 5  # MLPs in the ensemble (bootstrap samples, different seeds)
    surrogate_epochs: int = 150  # training epochs per member
    surrogate_hidden: int = 128  # hidden width of each MLP
    # gradient ascent on the surrogate
    steps_per_round: int = 10  # normalized gradient steps between two decodes
    learning_rate: float = 0.1  # step length in latent units; starts spread it over x0.25 .. x2
    prior_weight: float = 0.05  # ascend score + prior_weight * log p(z): stay where the decoder was trained
    uncertainty_weight: float = 0.5  # ascend mean - weight * ensemble std: distrust points the members disagree on
    restart_patience: int = 3  # re-draw a start after this many rounds without a new molecule
    # Bayesian optimization (GP over z, trust region)
    bo_initial: int = 64  # points scored before the first GP fit (prior / around the seed); at most budget / 2
    bo_screen: int = 20  # with a surrogate: initial points are the best-predicted of this many draws each (1 = none)
    bo_acquisition: str = "qlogei"  # qlogei | qei | qucb | ts (Thompson sampling on a candidate set: fast at large batches)
    bo_ts_candidates: int = 2000  # ts: candidate points per round in the trust region (TuRBO)
    bo_ucb_beta: float = 2.0  # exploration weight of qUCB
    bo_max_points: int = 300  # GP training points: the best half and the most recent half
    bo_raw_samples: int = 128  # random points that seed the acquisition optimization
    bo_restarts: int = 4  # acquisition optimization restarts
    bo_fit_iterations: int = 50  # L-BFGS iterations per GP fit (warm-started from the previous round)
    bo_acquisition_iterations: int = 50  # L-BFGS iterations per acquisition optimization
    bo_bound: float = 4.0  # search box: +-bound latent units around the origin (or the seed)
    # lead optimization
    min_similarity: float = 0.0  # Tanimoto floor (Morgan r=2) to the seed; nothing below is scored or returned
    lead_radius: float = 1.0  # random baseline and restarts: latent noise up to this radius around the seed
    prior_spread: float = 1.9  # exemplar spread of draws from the prior (random starts and baseline); 0 = the model's
    distance_weight: float = 0.0  # lead gradient ascent: extra penalty weight * |z - z_seed|^2 / 2
    screen_top: int = 4  # around a seed, with a surrogate: each round scores only this many new molecules, those
    # it predicts best from their own encodings (the others cost no call and may come back); 0 = all
    neighbourhood_elites: int = 0  # neighbourhood search explores around this many best molecules (1 = hill
    # climbing); 0 = 16 from random starts, 1 around a seed (16 there was within noise of 1: docs/benchmarks.md)
    floor_to_input: bool = False  # lead optimization: hold the similarity floor against each seed as written too,
    # not only against the standardized seed the model encodes (largest fragment; neutralized if its data was): JT-VAE's convention
    rewrites: int = 6  # around a seed (every method): rewrites of the parent molecule's SELFIES (the seed's, for
    # random, gradient and bo) from a late cut beside each greedy decode, instead of sampled decodes; 0 = one sampled decode
    refine_steps: int = REFINE_STEPS  # lead optimization starts from each seed's encoding refined by this many steps toward a
    # point the decoder writes the seed from (molvae.sample.refine_latents); 0 = the encoder mean

    def __post_init__(self) -> None:
        positive = ("budget", "batch_size", "decodes_per_point", "decode_beam", "max_rounds", "max_stale_rounds",
                    "surrogate_molecules", "surrogate_members", "surrogate_epochs", "surrogate_hidden",
                    "steps_per_round", "restart_patience", "bo_max_points", "bo_raw_samples", "bo_restarts",
                    "bo_screen", "bo_ts_candidates",
                    "bo_fit_iterations", "bo_acquisition_iterations")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"optimize.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.bo_initial, bool) or not isinstance(self.bo_initial, int) or self.bo_initial < 2:
            raise ValueError(f"optimize.bo_initial must be an integer >= 2, got {self.bo_initial!r}")
        for name in ("decode_temperature", "learning_rate", "bo_bound", "lead_radius"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"optimize.{name} must be a number > 0, got {value!r}")
        for name in ("prior_weight", "uncertainty_weight", "bo_ucb_beta", "distance_weight", "prior_spread"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
                raise ValueError(f"optimize.{name} must be a number >= 0, got {value!r}")
        if not 0.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"optimize.min_similarity must be in [0, 1], got {self.min_similarity!r}")
        if self.surrogate not in ("auto", "head", "ensemble", "none"):
            raise ValueError(f"optimize.surrogate must be auto, head, ensemble or none, got {self.surrogate!r}")
        if isinstance(self.neighbourhood_elites, bool) or not isinstance(self.neighbourhood_elites, int) \
                or self.neighbourhood_elites < 0:
            raise ValueError(f"optimize.neighbourhood_elites must be an integer >= 0, got {self.neighbourhood_elites!r}")
        for name in ("screen_top", "rewrites", "refine_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"optimize.{name} must be an integer >= 0, got {value!r}")
        if self.bo_acquisition not in ("qlogei", "qei", "qucb", "ts"):
            raise ValueError(f"optimize.bo_acquisition must be qlogei, qei, qucb or ts, got {self.bo_acquisition!r}")


def optimize_config_from_dict(table: Mapping[str, object], base: OptimizeConfig | None = None) -> OptimizeConfig:
    """:class:`OptimizeConfig` from a TOML-style table (over ``base``); an unknown key is an error naming it.

    Integers are accepted where a float is expected.

    >>> optimize_config_from_dict({"budget": 50, "learning_rate": 1}).learning_rate
    1.0
    >>> optimize_config_from_dict({"budjet": 50})
    Traceback (most recent call last):
    ...
    ValueError: optimize: unknown key 'budjet'; allowed: budget, batch_size, ...
    """
    base = base or OptimizeConfig()
    types = {f.name: type(getattr(base, f.name)) for f in dataclasses.fields(OptimizeConfig)}
    for key in table:
        if key not in types:
            names = list(types)
            raise ValueError(f"optimize: unknown key {key!r}; allowed: {', '.join(names[:2])}, ...")
    values = {}
    for key, value in table.items():
        if types[key] is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, types[key]) or (types[key] is not bool and isinstance(value, bool)):
            raise ValueError(f"optimize.{key} must be {types[key].__name__}, got {value!r}")
        values[key] = value
    return dataclasses.replace(base, **values)


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


def r2_and_mae(truth: torch.Tensor, guess: torch.Tensor) -> tuple[float, float]:
    """Coefficient of determination (0 for constant ``truth``) and mean absolute error of ``guess`` (N,)."""
    variance = float(((truth - truth.mean()) ** 2).mean())
    r2 = 1.0 - float(((truth - guess) ** 2).mean()) / variance if variance > 0 else 0.0
    return r2, float((truth - guess).abs().mean())


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


def _sigmoid_parameters(objective: Objective) -> tuple[float, float]:
    midpoint, scale = SIGMOID_DEFAULTS.get(objective.property, (None, None))
    midpoint = objective.midpoint if objective.midpoint is not None else midpoint
    scale = objective.scale if objective.scale is not None else scale
    if midpoint is None or scale is None:
        raise ValueError(f"objective {objective.label!r} needs midpoint and scale to be combined")
    return midpoint, scale


def _desirability(objective: Objective, value: torch.Tensor) -> torch.Tensor:
    if objective.goal == "window":
        width = objective.width if objective.width is not None else objective.high - objective.low
        distance = torch.clamp(torch.maximum(objective.low - value, value - objective.high), min=0.0)
        return torch.pow(2.0, -((distance / width) ** 2))
    midpoint, scale = _sigmoid_parameters(objective)
    t = (value - midpoint) / scale
    return torch.sigmoid(t if objective.goal == "max" else -t)


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
        return _desirability(objective, value)
    log_sum = torch.zeros_like(values[..., 0])
    for column, objective in enumerate(objectives):
        log_sum = log_sum + objective.weight * torch.log(_desirability(objective, values[..., column]).clamp(min=1e-30))
    return torch.exp(log_sum / sum(o.weight for o in objectives))


# --- the oracle -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Candidate:
    """One molecule the oracle scored (one oracle call)."""

    smiles: str  # canonical SMILES
    score: float | None  # true combined score (higher is better); None when a hard filter failed
    values: dict[str, float]  # true raw value per objective label
    failures: tuple[str, ...]  # failed filters (empty when scored)
    similarity: float | None  # Tanimoto (Morgan r=2) to the seed; None without a seed
    method: str  # optimizer that proposed it
    step: int  # the optimizer's round that proposed it (0 = initial design)
    call: int  # 1-based oracle call that scored it
    surrogate_score: float | None = None  # surrogate mean score at the latent point it was decoded from
    surrogate_std: float | None = None  # std of that score over the surrogate's members
    surrogate_values: dict[str, float] = field(default_factory=dict)  # surrogate mean raw value per label
    proposer_score: float | None = None  # what the proposing model predicted (gradient: surrogate; bo: GP mean)


@dataclass(frozen=True)
class PointOutcome:
    """What one latent point turned into (the best of its decodes)."""

    smiles: str | None  # canonical SMILES of its best decode; None when every decode was invalid
    score: float | None  # that molecule's true score (from the cache for duplicates); None: no score
    status: str  # new | duplicate | filtered | invalid | below_floor | unscored (budget spent) | screened
    statuses: tuple[str, ...] = ()  # the status of each of the point's decodes, in decoding order


@dataclass
class OracleStats:
    """Honest account of every decode the oracle saw."""

    calls: int = 0  # molecules scored (the budget unit)
    decodes: int = 0  # molecules decoded (points x decodes per point)
    invalid: int = 0  # decodes that are not a valid molecule
    non_canonical: int = 0  # with canonical_decodes: decodes whose SELFIES is not a canonical string (no call)
    duplicates: int = 0  # decodes of a molecule already scored (no call)
    below_floor: int = 0  # valid decodes under the similarity floor (never scored, never returned)
    unscored: int = 0  # new molecules left unscored because the budget was spent
    screened: int = 0  # with screen_top: new molecules at or above the floor the surrogate ranked out of a round
    filtered: int = 0  # scored molecules that failed a hard filter (they did cost a call)

    def as_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


class Oracle:
    """Decodes latent points, scores new molecules with the real objective, enforces the budget.

    ``reference`` (a SMILES) with ``min_similarity`` adds the similarity floor: a decoded molecule
    whose Tanimoto similarity to the reference is below the floor is neither scored nor
    returned. ``also_similar_to`` (a SMILES, e.g. the seed as written before standardization)
    holds the floor against it as well: similarity is then the lower of the two. ``known``
    pre-fills the cache (e.g. with the seed itself) so that decoding those molecules costs no call.
    ``surrogate`` annotates every candidate with its prediction.
    """

    def __init__(self, loaded: LoadedModel, objectives: Sequence[Objective], budget: int, *,
                 filters: Filters = Filters(), method: str = "", reference: str | None = None,
                 min_similarity: float = 0.0, decodes_per_point: int = 1, decode_temperature: float = 0.7,
                 decode_beam: int = 1, canonical_decodes: bool = False,
                 surrogate: Surrogate | None = None, known: Mapping[str, float | None] | None = None,
                 seed: int = 0, screen_top: int = 0, also_similar_to: str | None = None):
        if isinstance(budget, bool) or not isinstance(budget, int) or budget < 0:
            raise ValueError(f"budget must be an integer >= 0, got {budget!r}")
        if not 0.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be in [0, 1], got {min_similarity!r}")
        if min_similarity > 0 and reference is None:
            raise ValueError("a similarity floor needs a reference molecule")
        self.loaded = loaded
        self.objectives = tuple(objectives)
        self.budget = budget
        self.filters = filters
        self.method = method
        self.reference = reference
        self.min_similarity = min_similarity
        self.decodes_per_point = decodes_per_point
        self.decode_temperature = decode_temperature
        self.decode_beam = decode_beam
        self.canonical_decodes = canonical_decodes
        self.surrogate = surrogate
        self.screen_top = screen_top
        self.stats = OracleStats()
        self.candidates: list[Candidate] = []  # in call order
        self.stale_rounds = 0  # evaluate() calls in a row that scored no new molecule
        self.rewrite_span = 1.0  # rewrites cut the template within its last this share of symbols
        self.on_calls: Callable[[int], Any] | None = None  # told how many oracle calls each evaluate() used (progress)
        reference_mol = to_mol(reference) if reference is not None else None
        if reference is not None and reference_mol is None:
            raise ValueError(f"reference SMILES {reference!r} does not parse")
        if also_similar_to is not None and reference is None:
            raise ValueError("also_similar_to needs a reference molecule")
        also_mol = to_mol(also_similar_to) if also_similar_to is not None else None
        if also_similar_to is not None and also_mol is None:
            raise ValueError(f"SMILES {also_similar_to!r} (also_similar_to) does not parse")
        # fingerprinted once; a second reference with the same fingerprint (e.g. differing in stereo only) adds nothing
        self._reference_fps = [morgan_fingerprint(m) for m in (reference_mol, also_mol) if m is not None]
        if len(self._reference_fps) == 2 and self._reference_fps[0] == self._reference_fps[1]:
            del self._reference_fps[1]
        self._cache: dict[str, float | None] = dict(known or {})
        self._similarities: dict[str, float] = {}  # SMILES -> similarity to the reference
        self._decoded: dict[str, tuple[str | None, bool]] = {}  # SELFIES -> (canonical SMILES, is_canonical)
        self._encodings: dict[str, tuple[torch.Tensor, list[int]] | None] = {}  # SMILES -> (mu, ids); None: unreadable
        self._generator = torch.Generator(device=loaded.device).manual_seed(seed)
        score_smiles([], self.objectives)  # imports a custom scorer now: a wrong path fails before decoding

    @property
    def device(self) -> torch.device:
        return self.loaded.device

    @property
    def model(self) -> MolVAE:
        return self.loaded.model

    @property
    def latent_dim(self) -> int:
        return self.loaded.model.config.latent_dim

    @property
    def remaining(self) -> int:
        return self.budget - self.stats.calls

    @property
    def exhausted(self) -> bool:
        return self.stats.calls >= self.budget

    def best(self) -> Candidate | None:
        """The best-scoring candidate so far (earliest on ties)."""
        scored = [c for c in self.candidates if c.score is not None]
        return max(scored, key=lambda c: c.score) if scored else None

    def similarity(self, smiles: str) -> float | None:
        """Tanimoto similarity of a valid SMILES to the reference, or the lower of it and the one
        to ``also_similar_to`` (None without a reference)."""
        if not self._reference_fps:
            return None
        if smiles not in self._similarities:
            fingerprint = morgan_fingerprint(to_mol(smiles))
            self._similarities[smiles] = min(DataStructs.BulkTanimotoSimilarity(fingerprint, self._reference_fps))
        return self._similarities[smiles]

    def _decode(self, z: torch.Tensor, templates: Sequence[Sequence[int]] | None = None
                ) -> list[list[tuple[str | None, bool]]]:
        """``(canonical SMILES, is_canonical)`` per decode of each point: greedy (or, with
        ``decode_beam`` > 1, every distinct beam-search decode, canonical ones first), then
        ``decodes_per_point - 1`` sampled ones; with ``templates`` (one token string per point) the
        sampled decodes are rewrites of the point's template (:func:`molvae.sample.rewrite_tokens`).
        Without ``canonical_decodes`` a decode's SELFIES is not checked and ``is_canonical`` is True."""
        n, extra = z.size(0), self.decodes_per_point - 1
        greedy = 0 if self.decode_beam > 1 else n  # greedy rows ahead of the sampled ones, all in one batch
        points = z.repeat(extra + (1 if greedy else 0), 1)  # decode j of point i at row j * n + i
        temperature = torch.tensor([0.0] * greedy + [self.decode_temperature] * (n * extra))
        written = [None] * greedy + list(templates or [None] * n) * extra
        decoded = self._smiles(rewrite_tokens(self.loaded, points, written, temperature, self._generator,
                                              self.rewrite_span))
        first = decode_beams(self.loaded, z, self.decode_beam) if greedy == 0 else [[d] for d in decoded[:n]]
        rest = decoded[greedy:]
        return [[*first[i], *rest[i::n]] for i in range(n)]

    def _smiles(self, tokens: torch.Tensor) -> list[tuple[str | None, bool]]:
        """``(canonical SMILES, is_canonical)`` of each row of token ids (N, T); each distinct SELFIES
        string is read once per oracle (a search decodes the same strings many times)."""
        selfies = [self.loaded.vocab.decode(row) for row in tokens.tolist()]
        new = list(dict.fromkeys(s for s in selfies if s not in self._decoded))
        read = (decode_selfies_checked_list(new) if self.canonical_decodes
                else [(smiles, True) for smiles in decode_selfies_list(new)])
        self._decoded.update(zip(new, read))
        return [self._decoded[s] for s in selfies]

    def encodings(self, smiles: Sequence[str]) -> dict[str, tuple[torch.Tensor, list[int]]]:
        """Each molecule's encoding (mu, (Z,)) and SELFIES symbol ids (no BOS/EOS, a template for
        rewrites), for those the model can read; encoded once per oracle (the screen and the search's
        parents ask for the same molecules)."""
        new = list(dict.fromkeys(s for s in smiles if s not in self._encodings))
        if new:
            encoded = encode_smiles(self.loaded, new)
            for row, position in enumerate(encoded.index):
                ids = self.loaded.vocab.encode(encoded.selfies[row])[1:-1]
                self._encodings[new[position]] = (encoded.mu[row].to(self.device), ids)
            self._encodings.update((new[position], None) for position, _, _ in encoded.rejected)
        return {s: self._encodings[s] for s in smiles if self._encodings[s] is not None}

    def reference_template(self) -> list[int] | None:
        """The reference molecule's SELFIES symbol ids, the template of rewrites around it (None
        without a reference, or when the model cannot read it)."""
        if self.reference is None:
            return None
        return self.encodings([self.reference]).get(self.reference, (None, None))[1]

    @torch.no_grad()
    def _annotate(self, z: torch.Tensor) -> list[dict[str, Any]]:
        if self.surrogate is None:
            return [{} for _ in range(z.size(0))]
        members = self.surrogate.members(z)  # (K, N, P)
        scores = surrogate_score(self.objectives, members)  # (K, N)
        mean_values = members.mean(dim=0).cpu()  # (N, P)
        mean, std = scores.mean(dim=0).cpu(), scores.std(dim=0, unbiased=False).cpu()  # (N,), (N,)
        labels = self.surrogate.labels
        return [{"surrogate_score": float(mean[i]), "surrogate_std": float(std[i]),
                 "surrogate_values": {label: float(mean_values[i, j]) for j, label in enumerate(labels)}}
                for i in range(z.size(0))]

    def evaluate(self, z: torch.Tensor, step: int, proposer_score: torch.Tensor | None = None,
                 templates: Sequence[Sequence[int]] | None = None) -> list[PointOutcome]:
        """Decode latent points z (N, Z), score the new molecules within the budget, one outcome per point.

        ``proposer_score`` (N,) is what the proposing model predicted for each point; it is
        stored on the candidates for the surrogate-gap report. ``templates`` (one token string
        per point, :meth:`encodings`) turns the sampled decodes into rewrites of them.
        """
        z = z.detach().to(self.device, torch.float32)  # (N, Z)
        calls_before = self.stats.calls
        decoded = self._decode(z, templates)
        notes = self._annotate(z)
        proposed = proposer_score.detach().cpu().tolist() if proposer_score is not None else [None] * len(decoded)
        rows: list[list[list[Any]]] = []  # per point, [SMILES, status] per decode
        pending: dict[str, int] = {}  # new molecules at or above the floor -> the first point that decoded them
        for i, per_point in enumerate(decoded):
            row = []
            for smiles, canonical in per_point:
                self.stats.decodes += 1
                if self.canonical_decodes and smiles is not None and not canonical:
                    self.stats.non_canonical += 1
                    row.append([smiles, "non_canonical"])
                    continue
                status = self._check(smiles)
                if status is None:
                    status = "again" if smiles in pending else "pending"
                    pending.setdefault(smiles, i)
                row.append([smiles, status])
            rows.append(row)
        results = {}
        for smiles in self._screen(list(pending)):  # likeliest best first, so a budget running out keeps the best
            i = pending[smiles]
            results[smiles] = self._score(smiles, step, notes[i], proposed[i])
        for smiles in pending.keys() - results.keys():
            self.stats.screened += 1
            results[smiles] = "screened"
        for row in rows:
            for entry in row:
                if entry[1] == "pending":
                    entry[1] = results[entry[0]]
                elif entry[1] == "again":  # decoded twice this round: a duplicate once it was scored
                    entry[1] = "duplicate" if results[entry[0]] in ("new", "filtered") else results[entry[0]]
                    self.stats.duplicates += entry[1] == "duplicate"
                    self.stats.unscored += entry[1] == "unscored"
                    self.stats.screened += entry[1] == "screened"
        self.stale_rounds = 0 if self.stats.calls > calls_before else self.stale_rounds + 1
        if self.on_calls is not None and self.stats.calls > calls_before:
            self.on_calls(self.stats.calls - calls_before)
        return [self._outcome([tuple(entry) for entry in row]) for row in rows]

    def should_stop(self, max_stale_rounds: int) -> bool:
        """The budget is spent, or ``max_stale_rounds`` rounds in a row scored nothing new."""
        return self.exhausted or self.stale_rounds >= max_stale_rounds

    def _check(self, smiles: str | None) -> str | None:
        """``invalid``, ``duplicate`` (already scored) or ``below_floor``; None for a new molecule at or
        above the floor."""
        if smiles is None:
            self.stats.invalid += 1
            return "invalid"
        if smiles in self._cache:
            self.stats.duplicates += 1
            return "duplicate"
        similarity = self.similarity(smiles)
        if similarity is not None and similarity < self.min_similarity:
            self.stats.below_floor += 1
            return "below_floor"
        return None

    def _screen(self, smiles: list[str]) -> list[str]:
        """The new molecules of a round to score, in order: with ``screen_top`` and a surrogate, the
        ``screen_top`` it predicts best from their own encodings (unencodable ones last); else all."""
        if not self.screen_top or self.surrogate is None or len(smiles) <= self.screen_top:
            return smiles
        encodings = self.encodings(smiles)
        readable = [i for i, s in enumerate(smiles) if s in encodings]
        predicted = torch.full((len(smiles),), -math.inf)
        if readable:
            with torch.no_grad():
                members = self.surrogate.members(torch.stack([encodings[smiles[i]][0] for i in readable]))  # (K, N, P)
            predicted[readable] = surrogate_score(self.objectives, members).mean(dim=0).float().cpu()
        order = predicted.argsort(descending=True, stable=True)[: self.screen_top]
        return [smiles[i] for i in order.tolist()]

    def _score(self, smiles: str, step: int, note: dict[str, Any], proposed: float | None) -> str:
        """Score a new molecule at or above the floor (one call): ``new``, ``filtered``, or
        ``unscored`` when the budget is spent."""
        if self.exhausted:
            self.stats.unscored += 1
            return "unscored"
        (scored,) = score_smiles([smiles], self.objectives, self.filters)
        self.stats.calls += 1
        self._cache[smiles] = scored.score
        if scored.score is None:
            self.stats.filtered += 1
        self.candidates.append(Candidate(
            smiles=smiles, score=scored.score, values=dict(scored.values), failures=scored.failures,
            similarity=self.similarity(smiles), method=self.method, step=step, call=self.stats.calls,
            proposer_score=proposed, **note))
        return "new" if scored.score is not None else "filtered"

    def _outcome(self, row: list[tuple[str | None, str]]) -> PointOutcome:
        """The point's best decode: the highest true score, else the most informative status."""
        rank = {"new": 0, "duplicate": 1, "filtered": 2, "below_floor": 3, "unscored": 4, "screened": 5,
                "non_canonical": 6, "invalid": 7}
        statuses = tuple(status for _, status in row)
        outcomes = [PointOutcome(smiles, self._cache.get(smiles) if status in ("new", "duplicate") else None, status,
                                 statuses) for smiles, status in row]
        scored = [o for o in outcomes if o.score is not None]
        if scored:
            return max(scored, key=lambda o: (o.score, -rank[o.status]))
        return min(outcomes, key=lambda o: rank[o.status])

    def best_curve(self) -> list[float]:
        """Best true score after each call (NaN until the first scored molecule)."""
        curve, best = [], -math.inf
        for candidate in self.candidates:
            if candidate.score is not None:
                best = max(best, candidate.score)
            curve.append(best if best > -math.inf else math.nan)
        return curve


# --- optimizers -----------------------------------------------------------------------------

Optimizer = Callable[[Oracle, "Surrogate | None", Sequence[Objective], OptimizeConfig, "torch.Tensor | None"], None]


def _draw_starts(n: int, model: MolVAE, start: torch.Tensor | None, radius: float, generator: torch.Generator,
                 device: torch.device, spread: float = 0.0) -> torch.Tensor:
    """n latent points (n, Z): draws from the model's prior (its exemplars widened by ``spread``
    when it has them and ``spread`` > 0), or points around the seed at distances spread uniformly
    over 0 .. ``radius`` in random directions."""
    if start is None:
        exemplars = model.exemplars
        with torch.no_grad():
            if spread > 0 and exemplars is not None and exemplars.fitted:
                return exemplars.sample(n, generator, spread).to(device)
            return model.sample_latent(n, generator).to(device)
    directions = _unit_directions(n, model.config.latent_dim, generator, device)  # (n, Z)
    distance = radius * torch.rand(n, 1, generator=generator, device=device)  # (n, 1)
    return start.to(device).unsqueeze(0) + distance * directions  # (n, Z)


def run_random(oracle: Oracle, surrogate: Surrogate | None, objectives: Sequence[Objective],
               config: OptimizeConfig, start: torch.Tensor | None = None) -> None:
    """Baseline: batches of prior samples z ~ p(z) (or points around the seed's z, decoded greedily
    and as rewrites of the seed: :class:`_SeedRewrites`) until the budget is spent."""
    generator = torch.Generator(device=oracle.device).manual_seed(config.seed)
    rewrites = _SeedRewrites.start(oracle, config, start)
    for step in range(1, config.max_rounds + 1):
        if oracle.should_stop(config.max_stale_rounds):
            break
        z = _draw_starts(config.batch_size, oracle.model, start, config.lead_radius, generator, oracle.device,
                         config.prior_spread)
        rewrites.evaluate(z, step)


def run_gradient(oracle: Oracle, surrogate: Surrogate | None, objectives: Sequence[Objective],
                 config: OptimizeConfig, start: torch.Tensor | None = None) -> None:
    """Gradient ascent on the surrogate from ``batch_size`` starts in parallel.

    Each start ascends ``mean score - uncertainty_weight * std + prior_weight * log p(z)`` (for the
    N(0, I) prior: ``- prior_weight * |z|^2 / 2`` and a constant)
    (minus ``distance_weight * |z - z_seed|^2 / 2`` for a seed) with normalized steps whose
    lengths spread over 0.25x .. 2x ``learning_rate``; the starts, and then every
    ``steps_per_round`` steps all current points, are decoded and scored. A start that yields no
    new molecule for ``restart_patience`` rounds is re-drawn (from the prior, or around the seed).
    Around a seed each point is decoded greedily and as rewrites of the seed (:class:`_SeedRewrites`).
    """
    if surrogate is None:
        raise ValueError("gradient ascent needs a surrogate (a property head or an ensemble)")
    generator = torch.Generator(device=oracle.device).manual_seed(config.seed)
    n, device = config.batch_size, oracle.device
    if start is None:
        z = _draw_starts(n, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)  # (N, Z)
    else:
        z = _draw_starts(n, oracle.model, start, 0.1, generator, device)  # (N, Z) close to the seed
        z[0] = start.to(device)
    anchor = start.to(device).unsqueeze(0) if start is not None else None  # (1, Z)
    step_length = config.learning_rate * torch.logspace(-2, 1, n, base=2.0, device=device).unsqueeze(1)  # (N, 1)
    stale = torch.zeros(n, dtype=torch.long, device=device)  # (N,) rounds without a new molecule

    def ascent_objective(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = surrogate_score(objectives, surrogate.members(points))  # (K, N)
        mean = scores.mean(dim=0)  # (N,)
        std = scores.std(dim=0, unbiased=False) if scores.size(0) > 1 else torch.zeros_like(mean)  # (N,)
        value = mean - config.uncertainty_weight * std + config.prior_weight * oracle.model.prior_log_prob(points)
        if anchor is not None and config.distance_weight > 0:
            value = value - config.distance_weight * 0.5 * (points - anchor).pow(2).sum(dim=1)
        return value, mean  # (N,), (N,)

    rewrites = _SeedRewrites.start(oracle, config, start)
    with torch.no_grad():
        _, predicted = ascent_objective(z)
    rewrites.evaluate(z, 0, proposer_score=predicted)  # the starts themselves (near a seed: the most similar)
    for round_ in range(1, config.max_rounds + 1):
        if oracle.should_stop(config.max_stale_rounds):
            break
        for _ in range(config.steps_per_round):
            points = z.detach().requires_grad_(True)
            value, _ = ascent_objective(points)
            (grad,) = torch.autograd.grad(value.sum(), points)  # (N, Z)
            z = (points + step_length * grad / grad.norm(dim=1, keepdim=True).clamp(min=1e-12)).detach()
        with torch.no_grad():
            _, predicted = ascent_objective(z)
        outcomes = rewrites.evaluate(z, round_, proposer_score=predicted)
        found = torch.tensor([o.status == "new" for o in outcomes], device=device)  # (N,)
        stale = torch.where(found, torch.zeros_like(stale), stale + 1)
        restart = stale >= config.restart_patience  # (N,)
        if bool(restart.any()):
            fresh = _draw_starts(int(restart.sum()), oracle.model, start, config.lead_radius, generator, device,
                                 config.prior_spread)
            z[restart] = fresh
            stale[restart] = 0


def _gp_lengthscale(model: Any) -> torch.Tensor:
    kernel = model.covar_module
    kernel = getattr(kernel, "base_kernel", kernel)
    return kernel.lengthscale.detach().reshape(-1)  # (D,)


def run_bo(oracle: Oracle, surrogate: Surrogate | None, objectives: Sequence[Objective],
           config: OptimizeConfig, start: torch.Tensor | None = None) -> None:
    """Bayesian optimization over z with a GP, batch acquisition and a TuRBO-style trust region.

    Inputs are the latent box ``+-bo_bound`` (around the origin, or the seed's z) scaled to the
    unit cube. The initial design is ``bo_initial`` prior samples (or points around the seed); with a
    surrogate, the ``bo_initial`` of ``bo_initial * bo_screen`` such draws it predicts best.
    Each round fits a GP (:class:`botorch.models.SingleTaskGP`) to at most ``bo_max_points``
    observations, then picks ``batch_size`` points with qLogEI / qEI / qUCB inside a box centred
    on the best point, its side shaped by the GP's lengthscales (TuRBO). The box doubles after 3
    improving rounds or after a round that found no new molecule (all repeats), halves after
    repeated failures and is reset when it gets too small. Points without a score (invalid,
    filtered, below the floor) enter the GP with the worst observed score; around a seed a point's
    score is the best of its greedy decode and its rewrites of the seed (:class:`_SeedRewrites`). Randomness comes from
    ``config.seed``; BoTorch's global-RNG use is confined with ``botorch.utils.sampling.manual_seed``,
    which restores the global state.
    """
    dim, device = oracle.latent_dim, oracle.device
    generator = torch.Generator(device=device).manual_seed(config.seed)
    centre = start.detach().to("cpu", torch.float64) if start is not None else torch.zeros(dim, dtype=torch.float64)
    lower = centre - config.bo_bound  # (D,)
    width = 2.0 * config.bo_bound

    def to_latent(x: torch.Tensor) -> torch.Tensor:
        return (lower + x * width).to(device, torch.float32)  # (q, D) unit cube -> latent

    xs: list[torch.Tensor] = []  # unit-cube points (D,)
    ys: list[float | None] = []  # true scores (None: no score), in observation order

    def observe(x: torch.Tensor, outcomes: list[PointOutcome]) -> list[float | None]:
        new_scores = []
        for row, outcome in zip(x, outcomes):
            xs.append(row)
            ys.append(outcome.score)
            new_scores.append(outcome.score if outcome.status == "new" else None)
        return new_scores

    n_initial = max(2, min(config.bo_initial, oracle.budget // 2))  # at least half the budget for the GP
    screen = config.bo_screen if surrogate is not None else 1
    initial = _draw_starts(n_initial * screen, oracle.model, start, config.lead_radius, generator, device,
                           config.prior_spread)  # (I * S, D)
    if screen > 1:  # the surrogate's favourites: they cost no oracle call to choose
        with torch.no_grad():
            predicted = surrogate_score(objectives, surrogate.members(initial)).mean(dim=0)  # (I * S,)
        initial = initial[predicted.topk(n_initial).indices]  # (I, D)
    initial = initial.cpu().double()  # (I, D)
    if start is not None:
        initial[0] = centre  # the seed's own encoding
    initial_x = ((initial - lower) / width).clamp(0.0, 1.0)  # (I, D)
    rewrites = _SeedRewrites.start(oracle, config, start)
    observe(initial_x, rewrites.evaluate(to_latent(initial_x), 0))

    length_init, length_min, length_max = 0.8, 0.5**7, 1.6
    length, successes, failures = length_init, 0, 0
    q = config.batch_size
    failure_tolerance = math.ceil(max(4.0 / q, dim / q))
    best_seen = max((y for y in ys if y is not None), default=-math.inf)
    hyperparameters: dict[str, torch.Tensor] = {}
    for round_ in range(1, config.max_rounds + 1):
        if oracle.should_stop(config.max_stale_rounds):
            break
        valid = [y for y in ys if y is not None]
        batch = min(q, max(1, oracle.remaining))
        if len(set(valid)) < 2:  # nothing a GP could learn from yet: uniform points in the box around the start
            x_centre = ((centre - lower) / width).clamp(0.0, 1.0)  # (D,)
            tr_lower, tr_upper = (x_centre - length / 2).clamp(0.0, 1.0), (x_centre + length / 2).clamp(0.0, 1.0)
            uniform = torch.rand(batch, dim, generator=generator, device=device).cpu().double()  # (q, D)
            candidates, gp_mean = tr_lower + uniform * (tr_upper - tr_lower), None  # (q, D)
        else:
            candidates, gp_mean, hyperparameters = _bo_proposal(xs, ys, hyperparameters, length, batch, round_, config)
        outcomes = rewrites.evaluate(to_latent(candidates), round_, proposer_score=gp_mean)
        new_scores = [s for s in observe(candidates.detach(), outcomes) if s is not None]
        if not any(o.status == "new" for o in outcomes):
            length, failures = min(2.0 * length, length_max), 0  # only repeats: look wider
        elif new_scores and max(new_scores) > best_seen + 1e-3 * abs(best_seen):
            successes, failures = successes + 1, 0
        else:
            successes, failures = 0, failures + 1
        best_seen = max([best_seen, *new_scores])
        if successes >= 3:
            length, successes = min(2.0 * length, length_max), 0
        if failures >= failure_tolerance:
            length, failures = length / 2.0, 0
        if length < length_min:
            length, successes, failures = length_init, 0, 0


def _bo_proposal(xs: list[torch.Tensor], ys: list[float | None], hyperparameters: dict[str, torch.Tensor],
                 length: float, batch: int, round_: int,
                 config: OptimizeConfig) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    """One BO round: fit the GP, shape the trust region, optimize the acquisition.

    Returns candidates (q, D) in the unit cube, the GP's posterior mean there (q,) and the
    fitted hyperparameters (to warm-start the next round).
    """
    from botorch.acquisition import qExpectedImprovement, qUpperConfidenceBound
    from botorch.acquisition.logei import qLogExpectedImprovement
    from botorch.exceptions import ModelFittingError
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Standardize
    from botorch.optim import optimize_acqf
    from botorch.sampling import SobolQMCNormalSampler
    from botorch.utils.sampling import manual_seed
    from gpytorch.mlls import ExactMarginalLogLikelihood
    from gpytorch.utils.warnings import NumericalWarning

    dim = xs[0].numel()
    valid = [y for y in ys if y is not None]
    floor = min(valid)
    filled = torch.tensor([y if y is not None else floor for y in ys], dtype=torch.float64)  # (M,)
    chosen = _training_subset(filled, config.bo_max_points)
    train_x = torch.stack(xs)[chosen]  # (M', D)
    train_y = filled[chosen].unsqueeze(-1)  # (M', 1)
    with manual_seed(config.seed * 100_003 + round_), warnings.catch_warnings():  # BoTorch draws from the
        # global RNG (restored after). The jitter gpytorch adds to a near-singular kernel matrix is routine:
        # its warning, once per round, would bury the progress output
        warnings.simplefilter("ignore", NumericalWarning)
        model = SingleTaskGP(train_x, train_y, outcome_transform=Standardize(m=1))
        model.load_state_dict(hyperparameters, strict=False)  # warm start: last round's kernel and noise
        try:
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model),
                             optimizer_kwargs={"options": {"maxiter": config.bo_fit_iterations}})
        except ModelFittingError:
            log.warning("bo: GP fit failed in round %d; keeping the previous hyperparameters", round_)
        fitted = {k: v for k, v in model.state_dict().items() if not k.startswith("outcome_transform")}
        x_centre = train_x[int(train_y.argmax())]  # (D,) the best point so far
        weights = _gp_lengthscale(model)
        weights = weights / weights.mean()
        weights = weights / weights.prod().pow(1.0 / dim)  # (D,) TuRBO: the box's volume stays length^D
        tr_lower = (x_centre - weights * length / 2).clamp(0.0, 1.0)  # (D,)
        tr_upper = (x_centre + weights * length / 2).clamp(0.0, 1.0)  # (D,)
        if config.bo_acquisition == "ts":
            candidates = _thompson_candidates(model, x_centre, tr_lower, tr_upper, batch, config, round_)
            with torch.no_grad():
                gp_mean = model.posterior(candidates).mean.squeeze(-1)  # (q,)
            return candidates, gp_mean, fitted
        sampler = SobolQMCNormalSampler(torch.Size([128]), seed=config.seed * 100_003 + round_)
        if config.bo_acquisition == "qlogei":
            acquisition = qLogExpectedImprovement(model, best_f=train_y.max(), sampler=sampler)
        elif config.bo_acquisition == "qei":
            acquisition = qExpectedImprovement(model, best_f=train_y.max(), sampler=sampler)
        else:
            acquisition = qUpperConfidenceBound(model, beta=config.bo_ucb_beta, sampler=sampler)
        candidates, _ = optimize_acqf(acquisition, bounds=torch.stack([tr_lower, tr_upper]), q=batch,
                                      num_restarts=config.bo_restarts, raw_samples=config.bo_raw_samples,
                                      options={"maxiter": config.bo_acquisition_iterations, "batch_limit": 8})
        with torch.no_grad():
            gp_mean = model.posterior(candidates).mean.squeeze(-1)  # (q,)
    return candidates.detach(), gp_mean, fitted


def _thompson_candidates(model: Any, x_centre: torch.Tensor, tr_lower: torch.Tensor, tr_upper: torch.Tensor,
                         batch: int, config: OptimizeConfig, round_: int) -> torch.Tensor:
    """TuRBO's Thompson sampling (Eriksson et al. 2019): ``bo_ts_candidates`` points in the trust
    region, each the best point with a random subset of about 20 coordinates replaced by Sobol
    values; one joint GP posterior draw per batch slot, its best candidate taken (no repeats).
    One Cholesky factor over the candidates per round instead of a q-batch acquisition optimized
    by L-BFGS: far cheaper at large batches. Called inside the caller's ``manual_seed`` context."""
    from botorch.generation import MaxPosteriorSampling

    dim, n = x_centre.numel(), config.bo_ts_candidates
    sobol = torch.quasirandom.SobolEngine(dim, scramble=True, seed=config.seed * 100_003 + round_)
    perturbed = tr_lower + (tr_upper - tr_lower) * sobol.draw(n, dtype=torch.float64)  # (C, D)
    mask = torch.rand(n, dim, dtype=torch.float64) <= min(20.0 / dim, 1.0)  # (C, D) coordinates to change
    mask[mask.sum(dim=1) == 0, torch.randint(dim, (1,))] = True  # at least one per candidate
    candidates = torch.where(mask, perturbed, x_centre.expand(n, dim))  # (C, D)
    with torch.no_grad():
        return MaxPosteriorSampling(model=model, replacement=False)(candidates, num_samples=batch).detach()


def _training_subset(y: torch.Tensor, limit: int) -> torch.Tensor:
    """Indices of at most ``limit`` observations: the best half and the most recent rest."""
    n = y.numel()
    if n <= limit:
        return torch.arange(n)
    best = torch.topk(y, limit // 2).indices
    recent = torch.arange(n - 1, -1, -1)
    keep = torch.zeros(n, dtype=torch.bool)
    keep[best] = True
    for index in recent.tolist():
        if int(keep.sum()) >= limit:
            break
        keep[index] = True
    return keep.nonzero().squeeze(1)


_FLOOR_SHARE_HIGH, _FLOOR_SHARE_LOW = 0.6, 0.2  # neighbourhood: grow above, shrink below this share
_FRESH_SHARE = 0.25  # neighbourhood without a seed: the share of each round drawn fresh from the prior
_ELITES_FROM_RANDOM_STARTS = 16  # neighbourhood_elites = 0 (auto) without a seed; 1 (hill climbing) around one
_REWRITE_SPAN = 0.5  # rewrites first cut within the template's last half; adapted like the radius
_ABOVE_FLOOR = ("new", "duplicate", "filtered", "unscored", "screened")  # decode statuses of molecules at or above the floor


def run_neighbourhood(oracle: Oracle, surrogate: Surrogate | None, objectives: Sequence[Objective],
                      config: OptimizeConfig, start: torch.Tensor | None = None) -> None:
    """Search the latent neighbourhoods of the best molecules so far: each round decodes points
    ``parent + r * e``, ``parent`` the latent point of one of the ``neighbourhood_elites`` best
    molecules found (by default 16 from random starts and 1 around a seed, i.e. hill climbing from
    the best molecule; around a seed the seed itself stays a parent too), ``e`` a random unit
    direction and ``r`` spread over 0.25x .. 2x the current radius, which starts at
    ``lead_radius / 2``; each point is decoded greedily and by sampling (at least two decodes per
    point; around a seed, ``rewrites`` rewrites beside the greedy decode).

    Around a seed the sampled decodes are **rewrites** of the parent molecule's SELFIES
    (``rewrites``, :func:`molvae.sample.rewrite_tokens`): its string up to a late cut, a changed
    symbol there, the rest decoded from the point. A found molecule becomes a parent at its own
    encoding. The radius adapts to the share of points that decode to a molecule at or above the
    similarity floor and the rewrites' cut span to the share of rewrites that do (x1.5 above 60 %,
    x0.6 below 20 %), so few decodes are wasted below the floor. Without a seed the first round is
    prior draws, a quarter of every later round too, and the radius adapts to the share of explored
    points that only decode to molecules already scored (x1.5 above 60 %, x0.6 below 20 %).
    """
    generator = torch.Generator(device=oracle.device).manual_seed(config.seed)
    rewrites = config.rewrites > 0 and start is not None and oracle.reference is not None
    oracle.decodes_per_point = max(oracle.decodes_per_point, 1 + config.rewrites if rewrites else 2)
    n, device = config.batch_size, oracle.device
    fresh = 0 if start is not None or n == 1 else max(1, round(_FRESH_SHARE * n))
    radius = config.lead_radius / 2
    spread = torch.logspace(-2, 1, n - fresh, base=2.0, device=device).unsqueeze(1)  # (N - F, 1) 0.25x .. 2x
    n_elites = config.neighbourhood_elites or (1 if start is not None else _ELITES_FROM_RANDOM_STARTS)
    oracle.rewrite_span = _REWRITE_SPAN
    seed_template = oracle.reference_template() if rewrites else None
    elites: list[_Elite] = []  # the best new molecules, best first
    seed_point = [_Elite(math.nan, start.detach().to(device), seed_template, oracle.reference)] if start is not None else []
    if start is None:
        z = _draw_starts(n, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)
        chosen: list[_Elite] = []
    else:
        z, chosen = _around(seed_point, n, radius, spread, generator)  # (N, Z)
    for step in range(1, config.max_rounds + 1):
        if oracle.should_stop(config.max_stale_rounds):
            break
        # a parent without a template (a symbol the model lacks) gets an empty one: a plain sampled decode
        templates = [elite.template or [] for elite in chosen] if rewrites else None
        outcomes = oracle.evaluate(z, step, templates=templates)
        found = [_Elite(o.score, point.detach(), None, o.smiles)
                 for point, o in zip(z, outcomes) if o.status == "new" and o.score is not None]
        if start is not None and found:  # a sampled decode or rewrite is not what its point decodes to:
            found = _encoded_elites(oracle, found, rewrites)  # parent each molecule at its own encoding
        elites = sorted(elites + found, key=lambda elite: -elite.score)[:n_elites]
        explored = outcomes[fresh:]
        if start is not None:
            passed = sum(o.status in _ABOVE_FLOOR for o in explored) / len(explored)
            radius = _adapt_radius(radius, passed, config)
            if rewrites:
                _adapt_rewrite_span(oracle, explored)
        elif step > 1:
            repeated = sum(o.status == "duplicate" for o in explored) / len(explored)
            radius = _adapt_radius(radius, repeated, config)
        parents = elites + seed_point  # around a seed, keep exploring the seed's own neighbourhood too
        if not parents:  # nothing scored yet from random starts: prior draws again
            z = _draw_starts(n, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)
            continue
        z, chosen = _around(parents, n - fresh, radius, spread, generator)
        if fresh:
            drawn = _draw_starts(fresh, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)
            z = torch.cat([drawn, z])  # (N, Z): fresh draws first


def _adapt_rewrite_span(oracle: Oracle, outcomes: Sequence[PointOutcome]) -> None:
    """The share of rewrites (each point's sampled decodes) at or above the floor sets how much
    they change: the cut span grows above 60 % and shrinks below 20 %."""
    written = [s for o in outcomes for s in o.statuses[-(oracle.decodes_per_point - 1):]]
    share = sum(s in _ABOVE_FLOOR for s in written) / max(len(written), 1)
    oracle.rewrite_span = _adapt_share(oracle.rewrite_span, share, 0.05, 1.0)


@dataclass
class _SeedRewrites:
    """Random sampling, gradient ascent and BO around a seed: every point's sampled decodes are
    rewrites of the seed's SELFIES (as the neighbourhood search rewrites its parents), their cut span
    adapted to the share above the floor. Off (plain decodes) without a seed, with ``rewrites = 0``
    or for a seed the model cannot read."""

    oracle: Oracle
    template: list[int] | None

    @classmethod
    def start(cls, oracle: Oracle, config: OptimizeConfig, start: torch.Tensor | None) -> _SeedRewrites:
        template = oracle.reference_template() if config.rewrites > 0 and start is not None else None
        if template is not None:
            oracle.decodes_per_point = max(oracle.decodes_per_point, 1 + config.rewrites)
            oracle.rewrite_span = _REWRITE_SPAN
        return cls(oracle, template)

    def evaluate(self, z: torch.Tensor, step: int, proposer_score: torch.Tensor | None = None) -> list[PointOutcome]:
        if self.template is None:
            return self.oracle.evaluate(z, step, proposer_score=proposer_score)
        outcomes = self.oracle.evaluate(z, step, proposer_score, templates=[self.template] * z.size(0))
        _adapt_rewrite_span(self.oracle, outcomes)
        return outcomes


@dataclass(frozen=True)
class _Elite:
    """A parent of the neighbourhood search: its true score, latent point and SELFIES template."""

    score: float
    z: torch.Tensor  # (Z,)
    template: list[int] | None  # symbol ids for rewrites (None: rewrites off or not encodable)
    smiles: str | None = None


def _encoded_elites(oracle: Oracle, found: list[_Elite], templates: bool) -> list[_Elite]:
    """``found`` with each molecule's own encoding (mu) as its point (a molecule the model cannot
    encode keeps the point it was decoded from) and, with ``templates``, its SELFIES as its template."""
    encodings = oracle.encodings([elite.smiles for elite in found])
    return [_Elite(elite.score, encodings[elite.smiles][0] if elite.smiles in encodings else elite.z,
                   encodings[elite.smiles][1] if templates and elite.smiles in encodings else None, elite.smiles)
            for elite in found]


def _around(parents: list[_Elite], n: int, radius: float, spread: torch.Tensor,
            generator: torch.Generator) -> tuple[torch.Tensor, list[_Elite]]:
    """n points (n, Z): a parent chosen uniformly at random plus ``radius * spread`` times a random
    unit direction; and the parent of each point."""
    stacked = torch.stack([parent.z for parent in parents])  # (E, Z)
    index = torch.randint(len(parents), (n,), generator=generator, device=stacked.device)  # (n,)
    points = stacked[index] + radius * spread * _unit_directions(n, stacked.size(1), generator, stacked.device)
    return points, [parents[i] for i in index.tolist()]


def _unit_directions(n: int, dim: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    direction = torch.randn(n, dim, generator=generator, device=device)  # (n, dim)
    return direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-12)


def _adapt_radius(radius: float, share: float, config: OptimizeConfig) -> float:
    """x1.5 when ``share`` is above 60 %, x0.6 below 20 %, within [1e-3, 4 x lead_radius]."""
    return _adapt_share(radius, share, 1e-3, 4.0 * config.lead_radius)


def _adapt_share(value: float, share: float, low: float, high: float) -> float:
    """x1.5 when ``share`` is above 60 %, x0.6 below 20 %, within [low, high]."""
    value *= 1.5 if share > _FLOOR_SHARE_HIGH else 0.6 if share < _FLOOR_SHARE_LOW else 1.0
    return min(max(value, low), high)


OPTIMIZERS: dict[str, Optimizer] = {
    "gradient": run_gradient,
    "bo": run_bo,
    "random": run_random,
    "neighbourhood": run_neighbourhood,
}
"""Latent-space optimizers by name; each drives an :class:`Oracle` until its budget is spent."""


# --- results --------------------------------------------------------------------------------

def _pearson(a: Sequence[float], b: Sequence[float]) -> float:
    if len(a) < 2:
        return math.nan
    x, y = torch.tensor(a, dtype=torch.float64), torch.tensor(b, dtype=torch.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = float(x.norm() * y.norm())
    return float((x * y).sum()) / denominator if denominator > 0 else math.nan


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2.0
        i = j + 1
    return ranks


def surrogate_gap(candidates: Sequence[Candidate]) -> dict[str, float]:
    """How far the predictions were from the truth over the scored candidates.

    ``surrogate_*``: the property surrogate's mean score at each candidate's latent point vs its
    true score (MAE, Pearson and Spearman correlation, count ``n``); ``surrogate_mae_<label>``
    per objective value; ``proposer_*``: the same for the proposing model's own prediction
    (gradient: the surrogate's mean; BO: the GP's posterior mean). NaN where undefined.

    >>> c = Candidate("C", 1.0, {"qed": 1.0}, (), None, "m", 1, 1, surrogate_score=0.5,
    ...               surrogate_values={"qed": 0.5})
    >>> surrogate_gap([c])["surrogate_mae"]
    0.5
    """
    gap: dict[str, float] = {}
    scored = [c for c in candidates if c.score is not None]
    for prefix, attribute in (("surrogate", "surrogate_score"), ("proposer", "proposer_score")):
        pairs = [(getattr(c, attribute), c.score) for c in scored if getattr(c, attribute) is not None]
        predicted, truth = [p for p, _ in pairs], [t for _, t in pairs]
        gap[f"{prefix}_n"] = float(len(pairs))
        gap[f"{prefix}_mae"] = sum(abs(p - t) for p, t in pairs) / len(pairs) if pairs else math.nan
        gap[f"{prefix}_pearson"] = _pearson(predicted, truth)
        gap[f"{prefix}_spearman"] = _pearson(_ranks(predicted), _ranks(truth)) if pairs else math.nan
    labels = sorted({label for c in candidates for label in c.surrogate_values})
    for label in labels:
        pairs = [(c.surrogate_values[label], c.values[label]) for c in candidates
                 if label in c.surrogate_values and label in c.values]
        gap[f"surrogate_mae_{label}"] = sum(abs(p - t) for p, t in pairs) / len(pairs) if pairs else math.nan
    return gap


def top_k_auc(scores: Sequence[float | None], k: int = 10, budget: int = 10000, freq: int = 100) -> float:
    """Area under the curve of the top-``k`` average score against oracle calls, divided by
    ``budget``: the PMO benchmark's AUC (Gao et al. 2022, ``top_auc`` with ``finish=True``).

    ``scores`` are in call order, one per oracle call (``None``: a call without a score, e.g. a
    filtered molecule; it counts as a call). The curve is sampled every ``freq`` calls, starts
    at 0, uses the trapezoid rule and, if fewer than ``budget`` calls were made, is extended flat
    to ``budget``. Empty input gives 0.0.

    >>> top_k_auc([1.0] * 100, k=10, budget=100, freq=10)
    0.95
    """
    calls = list(scores)[:budget]
    if not calls:
        return 0.0

    def top_mean(n: int) -> float:
        best = sorted((s for s in calls[:n] if s is not None), reverse=True)[:k]
        return sum(best) / len(best) if best else 0.0

    area, previous, done = 0.0, 0.0, 0
    for n in range(freq, len(calls), freq):
        now = top_mean(n)
        area += freq * (now + previous) / 2
        previous, done = now, n
    now = top_mean(len(calls))
    area += (len(calls) - done) * (now + previous) / 2
    area += (budget - len(calls)) * now
    return area / budget


@dataclass
class MethodResult:
    """One optimizer's run: every scored molecule, the oracle's account, the curve and the surrogate gap."""

    method: str
    candidates: list[Candidate]  # every scored molecule, in call order
    stats: OracleStats
    best_curve: list[float]  # best true score after each call
    gap: dict[str, float]  # surrogate vs truth (see surrogate_gap)
    seconds: float  # wall time

    def ranked(self) -> list[Candidate]:
        """Scored candidates, best true score first."""
        return sorted((c for c in self.candidates if c.score is not None), key=lambda c: (-c.score, c.call))

    def summary(self, top: Sequence[int] = (1, 3, 10)) -> dict[str, float]:
        """Flat metrics: top-n scores and means, oracle counts, gap, seconds, PMO-style AUC."""
        ranked = self.ranked()
        metrics: dict[str, float] = {}
        for n in top:
            if len(ranked) >= n:
                metrics[f"top{n}_mean"] = sum(c.score for c in ranked[:n]) / n
        for i, candidate in enumerate(ranked[:3], start=1):
            metrics[f"score_{i}"] = candidate.score
        metrics.update({f"oracle_{k}": float(v) for k, v in self.stats.as_dict().items()})
        metrics["auc_top10"] = top_k_auc([c.score for c in self.candidates], 10, max(1, len(self.candidates)))
        metrics.update(self.gap)
        metrics["seconds"] = self.seconds
        return metrics


@dataclass
class OptimizationResult:
    """Several methods run from random starts on the same objectives and budget."""

    objectives: tuple[Objective, ...]
    budget: int
    methods: dict[str, MethodResult]
    surrogate: dict[str, Any]  # description of the surrogate (see build_surrogate)

    def ranked(self) -> list[Candidate]:
        """Distinct molecules over all methods, best true score first (each kept once, from the
        method that scored it in fewer calls)."""
        seen: dict[str, Candidate] = {}
        for result in self.methods.values():
            for candidate in result.ranked():
                kept = seen.get(candidate.smiles)
                if kept is None or candidate.call < kept.call:
                    seen[candidate.smiles] = candidate
        return sorted(seen.values(), key=lambda c: (-c.score, c.call))


def _new_oracle(loaded: LoadedModel, objectives: Sequence[Objective], method: str, config: OptimizeConfig,
                filters: Filters, surrogate: Surrogate | None, reference: str | None = None,
                known: Mapping[str, float | None] | None = None, min_similarity: float = 0.0,
                also_similar_to: str | None = None) -> Oracle:
    return Oracle(loaded, objectives, config.budget, filters=filters, method=method, reference=reference,
                  min_similarity=min_similarity, decodes_per_point=config.decodes_per_point,
                  decode_temperature=config.decode_temperature, decode_beam=config.decode_beam,
                  canonical_decodes=config.canonical_decodes, surrogate=surrogate,
                  known=known, seed=config.seed, screen_top=config.screen_top if reference is not None else 0,
                  also_similar_to=also_similar_to)


def _method_result(oracle: Oracle, seconds: float) -> MethodResult:
    return MethodResult(oracle.method, list(oracle.candidates), oracle.stats, oracle.best_curve(),
                        surrogate_gap(oracle.candidates), seconds)


def _check_method(method: str) -> Optimizer:
    if method not in OPTIMIZERS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[method]


def run_method(loaded: LoadedModel, objectives: Sequence[Objective], method: str,
               config: OptimizeConfig = OptimizeConfig(), filters: Filters = Filters(),
               surrogate: Surrogate | None = None) -> MethodResult:
    """Run one optimizer from random starts with its own oracle and the full budget."""
    optimizer = _check_method(method)
    oracle = _new_oracle(loaded, objectives, method, config, filters, surrogate)
    started = time.perf_counter()
    with tqdm(total=config.budget, desc=method, unit="call", leave=False, disable=None) as bar:
        oracle.on_calls = bar.update
        optimizer(oracle, surrogate, tuple(objectives), config, None)
    log.info("%s: %d calls, %d decodes (%d invalid, %d duplicates) in %.1f s", method, oracle.stats.calls,
             oracle.stats.decodes, oracle.stats.invalid, oracle.stats.duplicates, time.perf_counter() - started)
    return _method_result(oracle, time.perf_counter() - started)


def optimize(loaded: LoadedModel, objectives: Sequence[Objective],
             methods: Sequence[str] = ("gradient", "bo", "random"), config: OptimizeConfig = OptimizeConfig(),
             filters: Filters = Filters(), surrogate: Surrogate | None = None,
             surrogate_info: dict[str, Any] | None = None) -> OptimizationResult:
    """Run each method from random starts on the same objectives, each with ``config.budget`` calls.

    Methods are checked up front; ``gradient`` needs a surrogate (see :func:`build_surrogate`).
    """
    for method in methods:
        _check_method(method)
    if "gradient" in methods and surrogate is None:
        raise ValueError("method 'gradient' needs a surrogate (a property head or an ensemble)")
    results = {method: run_method(loaded, objectives, method, config, filters, surrogate) for method in methods}
    return OptimizationResult(tuple(objectives), config.budget, results, surrogate_info or {})


# --- lead optimization ----------------------------------------------------------------------

@dataclass
class LeadResult:
    """Optimization from one seed molecule under the similarity floor."""

    index: int  # position of the seed in the input
    input: str  # the seed as given
    smiles: str | None  # the standardized seed the model encoded; None if it could not be encoded
    status: str  # "ok" or the reason the seed was skipped (e.g. "unknown_token: ...")
    method: str
    min_similarity: float
    start_score: float | None  # true score of the standardized seed (not an oracle call)
    start_values: dict[str, float]
    best: Candidate | None  # best-scoring molecule found at or above the floor (None: nothing scored)
    candidates: list[Candidate]  # every molecule scored for this seed (all at or above the floor)
    stats: OracleStats
    seconds: float

    @property
    def success(self) -> bool:
        """An improved molecule (score above the seed's) was found at or above the floor."""
        return self.best is not None and (self.start_score is None or self.best.score > self.start_score)

    @property
    def improvement(self) -> float:
        """Best score minus start score when successful, else 0.0 (the seed is kept)."""
        if not self.success or self.start_score is None:
            return 0.0
        return self.best.score - self.start_score


def optimize_leads(loaded: LoadedModel, seeds: Sequence[str], objectives: Sequence[Objective],
                   method: str = "gradient", config: OptimizeConfig = OptimizeConfig(),
                   filters: Filters = Filters(), surrogate: Surrogate | None = None,
                   progress: Callable[[LeadResult], None] | None = None) -> list[LeadResult]:
    """Optimize each seed molecule from its own encoding with its own oracle and budget.

    Seeds are standardized as the model's training data was (largest fragment; neutralized unless
    the model keeps charges) and encoded (the encoding refined by
    ``config.refine_steps``, :func:`molvae.sample.refine_latents`); the start score and
    the similarity floor (``config.min_similarity``, Tanimoto of Morgan r=2 fingerprints) refer
    to the standardized seed, so a bare neutralization never counts as an improvement; with
    ``config.floor_to_input`` the floor holds against the seed as written too. The seed
    is pre-cached (decoding it back costs no call). Molecules below the floor are never scored
    nor returned. ``progress`` is called after each seed.
    """
    optimizer = _check_method(method)
    if method == "gradient" and surrogate is None:
        raise ValueError("method 'gradient' needs a surrogate (a property head or an ensemble)")
    encoded = encode_smiles(loaded, seeds, refine=config.refine_steps)
    rejected = {position: f"{reason}: {detail}".rstrip(": ") for position, reason, detail in encoded.rejected}
    rows = {position: row for row, position in enumerate(encoded.index)}
    results = []
    for position, seed in enumerate(tqdm(seeds, desc=f"{method}: seeds", unit="seed", leave=False, disable=None)):
        started = time.perf_counter()
        if position not in rows:
            result = LeadResult(position, seed, None, rejected.get(position, "not encoded"), method,
                                config.min_similarity, None, {}, None, [], OracleStats(), 0.0)
        else:
            row = rows[position]
            smiles = encoded.smiles[row]
            (start,) = score_smiles([smiles], objectives, filters)
            as_written = canonical_smiles(seed) if config.floor_to_input else None
            oracle = _new_oracle(loaded, objectives, method, config, filters, surrogate, reference=smiles,
                                 known={smiles: start.score}, min_similarity=config.min_similarity,
                                 also_similar_to=as_written if as_written not in (None, smiles) else None)
            optimizer(oracle, surrogate, tuple(objectives), config, encoded.mu[row])
            result = LeadResult(position, seed, smiles, "ok", method, config.min_similarity, start.score,
                                dict(start.values), oracle.best(), list(oracle.candidates), oracle.stats,
                                time.perf_counter() - started)
        results.append(result)
        if progress is not None:
            progress(result)
    return results


def lead_summary(results: Sequence[LeadResult]) -> dict[str, float]:
    """Benchmark figures over seeds: mean and std of the improvement (0 for a failed or skipped
    seed, as in the JT-VAE table), success rate, mean similarity of the successful molecules,
    and the mean improvement over successful seeds only.

    >>> lead_summary([])["success_rate"]
    0.0
    """
    n = len(results)
    improvements = [r.improvement for r in results]
    successes = [r for r in results if r.success]
    mean = sum(improvements) / n if n else 0.0
    std = math.sqrt(sum((x - mean) ** 2 for x in improvements) / n) if n else 0.0
    return {
        "seeds": float(n),
        "encoded": float(sum(r.status == "ok" for r in results)),
        "improvement_mean": mean,
        "improvement_std": std,
        "success_rate": len(successes) / n if n else 0.0,
        "similarity_mean": sum(r.best.similarity for r in successes) / len(successes) if successes else math.nan,
        "improvement_mean_successful": (sum(r.improvement for r in successes) / len(successes)
                                        if successes else math.nan),
        "calls_mean": sum(r.stats.calls for r in results) / n if n else 0.0,
    }


# --- tables ---------------------------------------------------------------------------------

def candidates_table(candidates: Sequence[Candidate], objectives: Sequence[Objective],
                     training: set[str] | None = None, extra_properties: Sequence[str] = (),
                     seed_smiles: str | None = None) -> pd.DataFrame:
    """One row per candidate, in the given order (``rank`` 1, 2, ...): SMILES, true score, every
    objective's true value, the surrogate's predictions, similarity to the seed, novelty (vs
    ``training``; empty without it), failed filters, ``rdkit_<name>`` extra properties, and the
    method, step and call that found it. The columns are the same when there are no candidates."""
    labels = [o.label for o in objectives]
    columns = ["rank", "smiles", "score", *(["seed"] if seed_smiles is not None else []), *labels,
               "surrogate_score", "surrogate_std", *(f"surrogate_{label}" for label in labels), "proposer_score",
               "similarity", "novel", "failures", *(f"rdkit_{name}" for name in extra_properties),
               "method", "step", "call"]
    rows = []
    for rank, c in enumerate(candidates, start=1):
        row: dict[str, Any] = {
            "rank": rank, "smiles": c.smiles, "score": c.score, "seed": seed_smiles,
            **{label: c.values.get(label) for label in labels},
            "surrogate_score": c.surrogate_score, "surrogate_std": c.surrogate_std,
            **{f"surrogate_{label}": c.surrogate_values.get(label) for label in labels},
            "proposer_score": c.proposer_score, "similarity": c.similarity,
            "novel": (c.smiles not in training) if training is not None else None,
            "failures": ";".join(c.failures), "method": c.method, "step": c.step, "call": c.call,
        }
        if extra_properties:
            values = compute_properties(to_mol(c.smiles), list(extra_properties))
            row.update({f"rdkit_{name}": value for name, value in values.items()})
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
