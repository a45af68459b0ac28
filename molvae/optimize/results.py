"""What a method found: its candidates ranked by true score, the surrogate's gap to the truth, the
PMO-style AUC of the running top-k, and the table a chemist opens."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
import torch

from molvae.chem import compute_properties, to_mol
from molvae.objectives import Objective
from molvae.optimize.oracle import Candidate, OracleStats

log = logging.getLogger(__name__)


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
