"""An optimization campaign: objectives, methods and settings in, every table a chemist reads out.

:func:`run_campaign` is what ``molvae optimize`` and :meth:`molvae.Model.optimize` run: it builds the
surrogate, runs each method from random starts (or from each lead with ``seeds``) under its oracle
budget, and returns the ranked molecules, every scored candidate, a per-method summary, the per-lead
table and the best-score curves. It writes no files; the CLI does.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from molvae import BUNDLED_DATA
from molvae.checkpoint import LoadedModel
from molvae.errors import UserError
from molvae.objectives import Filters, Objective, format_objectives
from molvae.optimize.config import OptimizeConfig, random_start_settings
from molvae.optimize.leads import LeadResult, lead_summary, optimize_leads
from molvae.optimize.methods import OPTIMIZERS, run_method
from molvae.optimize.results import OptimizationResult, candidates_table
from molvae.optimize.surrogates import build_surrogate
from molvae.tracking import NullTracker, Tracker
from molvae.trainset import novelty_reference, surrogate_molecules

__all__ = ["Campaign", "default_methods", "resolve_recipe", "run_campaign"]

log = logging.getLogger(__name__)

ChildRun = Callable[[str], AbstractContextManager[Tracker]]  # method name -> a (child) tracking run


def default_methods(from_leads: bool) -> tuple[str, ...]:
    """The methods run when none are named: around leads the neighbourhood search leads, beside
    gradient ascent and the random baseline; from random starts the population search alone (with
    :data:`molvae.optimize.config.POPULATION_SEARCH`)."""
    return ("neighbourhood", "gradient", "random") if from_leads else ("neighbourhood",)


def resolve_recipe(methods: Sequence[str], table: Mapping[str, object],
                   from_leads: bool) -> tuple[tuple[str, ...], dict[str, object]]:
    """The methods to run (those named, else :func:`default_methods`) and the ``[optimize]`` table,
    over :data:`molvae.optimize.config.POPULATION_SEARCH` from random starts when the population search
    runs alone (:func:`molvae.optimize.config.random_start_settings`): what the CLI and the API run.
    Beside other methods it keeps the preset through
    :func:`molvae.optimize.config.method_settings`, each method's own settings.

    >>> resolve_recipe([], {"budget": 10}, from_leads=False)[1]["decodes_per_point"]
    4
    >>> resolve_recipe(["bo"], {"budget": 10}, from_leads=False)
    (('bo',), {'budget': 10})
    """
    methods = tuple(methods) or default_methods(from_leads)
    return methods, dict(table) if from_leads else random_start_settings(table, methods)


@dataclass
class Campaign:
    """What an optimization found. Every table has one molecule (or method, or lead) per row."""

    objectives: tuple[Objective, ...]
    methods: tuple[str, ...]
    config: OptimizeConfig
    best: pd.DataFrame  # the top molecules, ranked by true score (per lead with seeds)
    candidates: pd.DataFrame  # every molecule scored
    summary: pd.DataFrame  # one row per method: top scores, oracle counts, surrogate gap (leads: success)
    curves: dict[str, list[float]]  # per method: best score (leads: mean improvement) after each call
    grid: list[tuple[str, str]]  # molecules to draw, with their legends
    leads: pd.DataFrame | None = None  # with seeds: one row per seed and method
    surrogate: dict[str, Any] = field(default_factory=dict)  # what the surrogate is and how well it fits
    seconds: float = 0.0


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def _log_curve(tracker: Tracker, name: str, curve: list[float], points: int = 100) -> None:
    """A best-score curve as a tracked metric with the call number as step (about ``points`` steps)."""
    every = max(1, len(curve) // points)
    for call in range(every, len(curve) + 1, every):
        if math.isfinite(curve[call - 1]):
            tracker.log_metrics({name: curve[call - 1]}, step=call)


def _surrogate_data(path: str, column: str, objectives: Sequence[Objective]
                    ) -> tuple[list[str], dict[str, list[float]]]:
    """SMILES of a user file and, per objective, a numeric column named like its label (if present)."""
    from molvae.data import read_smiles_table

    table, smiles_column = read_smiles_table(path, column)
    labels = {}
    for objective in objectives:
        if objective.label in table.columns and objective.label != smiles_column:
            labels[objective.label] = pd.to_numeric(table[objective.label], errors="coerce").astype(float).tolist()
            log.info("surrogate labels for %s: column %r of %s", objective.label, objective.label, path)
    return table[smiles_column].tolist(), labels


def _surrogate(loaded: LoadedModel, objectives: Sequence[Objective], config: OptimizeConfig,
               data: str | None, data_column: str):
    if config.surrogate == "none":
        return None, {"kind": "none"}
    if data:
        smiles, labels = _surrogate_data(data, data_column, objectives)
    elif (training := surrogate_molecules(loaded)) is None and BUNDLED_DATA.exists():
        # e.g. an older checkpoint in a fresh clone, whose training file is not there: the bundled
        # MOSES sample is from the same distribution, which is all a surrogate needs
        log.info("surrogate fitted on the bundled %s instead", BUNDLED_DATA.name)
        smiles, labels = _surrogate_data(str(BUNDLED_DATA), "", [])[0], None
    else:
        smiles, labels = training, None
    surrogate, info = build_surrogate(loaded, objectives, config.surrogate, smiles, labels, config)
    log.info("surrogate: %s", ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                        for k, v in info.items()))
    return surrogate, info


def run_campaign(loaded: LoadedModel, objectives: Sequence[Objective], methods: Sequence[str] = (),
                 config: OptimizeConfig = OptimizeConfig(), filters: Filters = Filters(),
                 seeds: Sequence[str] | None = None, *, surrogate_data: str | None = None,
                 surrogate_data_column: str = "", report_properties: Sequence[str] = ("qed", "logp", "sa", "mw",
                                                                                      "plogp_raw"),
                 top: int = 100, top_per_seed: int = 3, grid: int = 24, tracker: Tracker | None = None,
                 child_run: ChildRun | None = None,
                 method_configs: Mapping[str, OptimizeConfig] | None = None) -> Campaign:
    """Optimize ``objectives`` with each of ``methods`` (default :func:`default_methods`), each under
    ``config.budget`` oracle calls: from random starts, or from each SMILES of ``seeds`` in turn within
    ``config.min_similarity`` of it. From random starts a method in ``method_configs`` runs with those
    settings instead (:func:`molvae.optimize.config.method_settings`); the surrogate follows ``config``.
    ``tracker`` records the campaign, ``child_run(method)`` one run per method (both record nothing by
    default)."""
    methods = tuple(methods) or default_methods(seeds is not None)
    for method in methods:
        if method not in OPTIMIZERS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(OPTIMIZERS)}")
    if "gradient" in methods and config.surrogate == "none":
        raise UserError("method 'gradient' needs a surrogate; drop it or choose surrogate auto, head or ensemble")
    if seeds is not None and not seeds:
        raise UserError("no seed molecules to optimize from")
    tracker = tracker or NullTracker()
    child_run = child_run or (lambda method: NullTracker())
    started = time.perf_counter()
    surrogate, surrogate_info = _surrogate(loaded, objectives, config, surrogate_data, surrogate_data_column)
    if "gradient" in methods and surrogate is None:
        raise UserError("method 'gradient' needs a surrogate: the model has no property head for these objectives "
                        "and no training data was found (give surrogate data)")
    tracker.log_params({"objectives": format_objectives(objectives), "methods": ",".join(methods),
                        "seeds": len(seeds) if seeds is not None else 0, "optimize": dataclasses.asdict(config),
                        "filters": dataclasses.asdict(filters), "surrogate": surrogate_info})
    training = novelty_reference(loaded)
    if seeds is None:
        campaign = _from_random_starts(loaded, tuple(objectives), methods, config, dict(method_configs or {}),
                                       filters, surrogate, surrogate_info, training, list(report_properties), top,
                                       grid, tracker, child_run)
    else:
        campaign = _from_leads(loaded, tuple(objectives), methods, config, filters, surrogate, list(seeds),
                               training, top_per_seed, grid, tracker, child_run)
    campaign.surrogate = surrogate_info
    campaign.seconds = time.perf_counter() - started
    return campaign


def _from_random_starts(loaded, objectives, methods, config, method_configs, filters, surrogate, surrogate_info,
                        training, extra, top, grid, tracker, child_run) -> Campaign:
    results = {}
    for method in methods:
        own = method_configs.get(method, config)
        with child_run(method) as child:
            child.log_params({"method": method, "budget": own.budget,
                              **({"optimize": dataclasses.asdict(own)} if own != config else {})})
            result = run_method(loaded, objectives, method, own, filters,
                                surrogate if own.surrogate != "none" else None)
            child.log_metrics(_finite(result.summary()))
            _log_curve(child, "best_score", result.best_curve)
        tracker.log_metrics(_finite({f"{method}_{k}": v for k, v in result.summary().items()
                                     if k in ("top1_mean", "top3_mean", "top10_mean", "oracle_calls")}))
        results[method] = result
    ranked = OptimizationResult(objectives, config.budget, results, surrogate_info).ranked()
    return Campaign(
        objectives, methods, config,
        best=candidates_table(ranked[:top], objectives, training, extra),
        candidates=candidates_table([c for r in results.values() for c in r.candidates], objectives, training),
        summary=pd.DataFrame([{"method": m, **r.summary()} for m, r in results.items()]),
        curves={m: r.best_curve for m, r in results.items()},
        grid=[(c.smiles, f"{c.score:.3f} {c.method} #{c.call}") for c in ranked[:grid]])


def _lead_row(r: LeadResult, method: str, training) -> dict[str, Any]:
    best = r.best
    return {
        "seed_index": r.index + 1, "seed_input": r.input, "seed_smiles": r.smiles, "status": r.status,
        "method": method, "start_score": r.start_score, **{f"start_{k}": v for k, v in r.start_values.items()},
        "best_smiles": best.smiles if best else None, "best_score": best.score if best else None,
        **{f"best_{k}": v for k, v in (best.values if best else {}).items()},
        "improvement": r.improvement, "similarity": best.similarity if best else None, "success": r.success,
        "novel": (best.smiles not in training) if (best and training) else None,
        "found_at_call": best.call if best else None, "found_at_step": best.step if best else None,
        "calls": r.stats.calls, "decodes": r.stats.decodes, "invalid": r.stats.invalid,
        "duplicates": r.stats.duplicates, "below_floor": r.stats.below_floor, "seconds": r.seconds,
    }


def _from_leads(loaded, objectives, methods, config, filters, surrogate, seeds, training, top_per_seed, grid,
                tracker, child_run) -> Campaign:
    lead_rows, best_tables, all_tables, summary, curves, shown = [], [], [], [], {}, []
    for method in methods:
        with child_run(method) as child:
            child.log_params({"method": method, "budget_per_seed": config.budget,
                              "min_similarity": config.min_similarity, "seeds": len(seeds)})
            results = optimize_leads(loaded, seeds, objectives, method, config, filters, surrogate,
                                     progress=lambda r: log.info("%s seed %d: %s -> %s", method, r.index + 1,
                                                                 r.start_score, r.best.score if r.best else None))
            figures = lead_summary(results)
            child.log_metrics(_finite(figures))
            if len(results) <= 100:
                for r in results:
                    child.log_metrics({"improvement": r.improvement, "success": float(r.success)}, step=r.index + 1)
        tracker.log_metrics(_finite({f"{method}_{k}": figures[k]
                                     for k in ("improvement_mean", "improvement_std", "success_rate")}))
        summary.append({"method": method, **figures})
        for r in results:
            lead_rows.append(_lead_row(r, method, training))
            ranked = sorted((c for c in r.candidates if c.score is not None), key=lambda c: (-c.score, c.call))
            best_tables.append(candidates_table(ranked[:top_per_seed], objectives, training,
                                                seed_smiles=r.smiles or r.input))
            all_tables.append(candidates_table(r.candidates, objectives, training, seed_smiles=r.smiles or r.input))
            if r.success and len(shown) < grid:
                shown.append((r.best.smiles, f"+{r.improvement:.2f} sim {r.best.similarity:.2f} {method}"))
        curves[method] = mean_improvement_curve(results, config.budget)
    return Campaign(objectives, methods, config, best=pd.concat(best_tables, ignore_index=True),
                    candidates=pd.concat(all_tables, ignore_index=True), summary=pd.DataFrame(summary),
                    curves=curves, grid=shown, leads=pd.DataFrame(lead_rows))


def mean_improvement_curve(results: Sequence[LeadResult], budget: int) -> list[float]:
    """Mean over seeds of the best improvement found within the first n calls (0 before any).

    >>> mean_improvement_curve([], 3)
    []
    """
    if not results:
        return []
    totals = [0.0] * budget
    for r in results:
        best = 0.0
        by_call = {c.call: c.score for c in r.candidates if c.score is not None}
        for call in range(1, budget + 1):
            score = by_call.get(call)
            if score is not None and r.start_score is not None:
                best = max(best, score - r.start_score)
            totals[call - 1] += best
    return [t / len(results) for t in totals]
