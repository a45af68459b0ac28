"""The methods by name, and running one or several from random starts."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

from tqdm.auto import tqdm

from molvae.checkpoint import LoadedModel
from molvae.objectives import Filters, Objective
from molvae.optimize.bo import run_bo
from molvae.optimize.config import OptimizeConfig
from molvae.optimize.neighbourhood import run_neighbourhood
from molvae.optimize.oracle import Oracle
from molvae.optimize.results import MethodResult, OptimizationResult, surrogate_gap
from molvae.optimize.search import Optimizer, run_gradient, run_random
from molvae.optimize.surrogates import Surrogate

log = logging.getLogger(__name__)


OPTIMIZERS: dict[str, Optimizer] = {
    "gradient": run_gradient,
    "bo": run_bo,
    "random": run_random,
    "neighbourhood": run_neighbourhood,
}
"""Latent-space optimizers by name; each drives an :class:`Oracle` until its budget is spent."""



def new_oracle(loaded: LoadedModel, objectives: Sequence[Objective], method: str, config: OptimizeConfig,
                filters: Filters, surrogate: Surrogate | None, reference: str | None = None,
                known: Mapping[str, float | None] | None = None, min_similarity: float = 0.0,
                also_similar_to: str | None = None) -> Oracle:
    return Oracle(loaded, objectives, config.budget, filters=filters, method=method, reference=reference,
                  min_similarity=min_similarity, decodes_per_point=config.decodes_per_point,
                  decode_temperature=config.decode_temperature, decode_beam=config.decode_beam,
                  canonical_decodes=config.canonical_decodes, surrogate=surrogate,
                  known=known, seed=config.seed, screen_top=config.screen_top if reference is not None else 0,
                  screen_by_calls=config.screen_by_calls, also_similar_to=also_similar_to)


def method_result(oracle: Oracle, seconds: float) -> MethodResult:
    return MethodResult(oracle.method, list(oracle.candidates), oracle.stats, oracle.best_curve(),
                        surrogate_gap(oracle.candidates), seconds)


def check_method(method: str) -> Optimizer:
    if method not in OPTIMIZERS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[method]


def run_method(loaded: LoadedModel, objectives: Sequence[Objective], method: str,
               config: OptimizeConfig = OptimizeConfig(), filters: Filters = Filters(),
               surrogate: Surrogate | None = None) -> MethodResult:
    """Run one optimizer from random starts with its own oracle and the full budget."""
    optimizer = check_method(method)
    oracle = new_oracle(loaded, objectives, method, config, filters, surrogate)
    started = time.perf_counter()
    with tqdm(total=config.budget, desc=method, unit="call", leave=False, disable=None) as bar:
        oracle.on_calls = bar.update
        optimizer(oracle, surrogate, tuple(objectives), config, None)
    log.info("%s: %d calls, %d decodes (%d invalid, %d duplicates) in %.1f s", method, oracle.stats.calls,
             oracle.stats.decodes, oracle.stats.invalid, oracle.stats.duplicates, time.perf_counter() - started)
    return method_result(oracle, time.perf_counter() - started)


def optimize(loaded: LoadedModel, objectives: Sequence[Objective],
             methods: Sequence[str] = ("gradient", "bo", "random"), config: OptimizeConfig = OptimizeConfig(),
             filters: Filters = Filters(), surrogate: Surrogate | None = None,
             surrogate_info: dict[str, Any] | None = None) -> OptimizationResult:
    """Run each method from random starts on the same objectives, each with ``config.budget`` calls.

    Methods are checked up front; ``gradient`` needs a surrogate (see :func:`build_surrogate`).
    """
    for method in methods:
        check_method(method)
    if "gradient" in methods and surrogate is None:
        raise ValueError("method 'gradient' needs a surrogate (a property head or an ensemble)")
    results = {method: run_method(loaded, objectives, method, config, filters, surrogate) for method in methods}
    return OptimizationResult(tuple(objectives), config.budget, results, surrogate_info or {})
