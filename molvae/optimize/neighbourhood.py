"""The neighbourhood search: hill climbing around a seed at a radius kept where decodes clear the
similarity floor, or from random starts a population search around the best molecules so far."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from molvae.objectives import Objective
from molvae.optimize.config import OptimizeConfig
from molvae.optimize.finetune import Finetuner
from molvae.optimize.oracle import Oracle
from molvae.optimize.rewrites import ABOVE_FLOOR, REWRITE_SPAN, adapt_rewrite_span, adapt_share
from molvae.optimize.search import draw_starts, unit_directions
from molvae.optimize.surrogates import Surrogate

log = logging.getLogger(__name__)


_FRESH_SHARE = 0.25  # neighbourhood without a seed: the share of each round drawn fresh from the prior
_ELITES_FROM_RANDOM_STARTS = 16  # neighbourhood_elites = 0 (auto) without a seed; 1 (hill climbing) around one


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
    points that only decode to molecules already scored (x1.5 above 60 %, x0.6 below 20 %). With
    ``encode_parents`` a molecule found from random starts is a parent at its own encoding too. With
    ``finetune_every`` the model is fine-tuned every that many rounds on the molecules scored so far
    (:class:`molvae.optimize.finetune.Finetuner`) and the parents move to their new encodings.
    """
    generator = torch.Generator(device=oracle.device).manual_seed(config.seed)
    rewrites = config.rewrites > 0 and start is not None and oracle.reference is not None
    oracle.decodes_per_point = max(oracle.decodes_per_point, 1 + config.rewrites if rewrites else 2)
    n, device = config.batch_size, oracle.device
    fresh = 0 if start is not None or n == 1 else max(1, round(_FRESH_SHARE * n))
    radius = config.lead_radius / 2
    spread = torch.logspace(-2, 1, n - fresh, base=2.0, device=device).unsqueeze(1)  # (N - F, 1) 0.25x .. 2x
    n_elites = config.neighbourhood_elites or (1 if start is not None else _ELITES_FROM_RANDOM_STARTS)
    oracle.rewrite_span = REWRITE_SPAN
    seed_template = oracle.reference_template() if rewrites else None
    finetuner = Finetuner(oracle, config.finetune_steps, config.seed) if start is None and config.finetune_every else None
    encode_parents = start is not None or config.encode_parents or finetuner is not None
    elites: list[_Elite] = []  # the best new molecules, best first
    seed_point = [_Elite(math.nan, start.detach().to(device), seed_template, oracle.reference)] if start is not None else []
    if start is None:
        z = draw_starts(n, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)
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
        if encode_parents and found:
            # a sampled decode or rewrite is not what its point decodes to: parent each molecule at its own encoding
            found = _encoded_elites(oracle, found, rewrites)
        elites = sorted(elites + found, key=lambda elite: -elite.score)[:n_elites]
        if finetuner is not None and step % config.finetune_every == 0:
            finetuner.step()
            elites = _encoded_elites(oracle, elites, rewrites)
        explored = outcomes[fresh:]
        if start is not None:
            passed = sum(o.status in ABOVE_FLOOR for o in explored) / len(explored)
            radius = _adapt_radius(radius, passed, config)
            if rewrites:
                adapt_rewrite_span(oracle, explored)
        elif step > 1:
            repeated = sum(o.status == "duplicate" for o in explored) / len(explored)
            radius = _adapt_radius(radius, repeated, config)
        parents = elites + seed_point  # around a seed, keep exploring the seed's own neighbourhood too
        if not parents:  # nothing scored yet from random starts: prior draws again
            z = draw_starts(n, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)
            continue
        z, chosen = _around(parents, n - fresh, radius, spread, generator)
        if fresh:
            drawn = draw_starts(fresh, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)
            z = torch.cat([drawn, z])  # (N, Z): fresh draws first


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
    points = stacked[index] + radius * spread * unit_directions(n, stacked.size(1), generator, stacked.device)
    return points, [parents[i] for i in index.tolist()]


def _adapt_radius(radius: float, share: float, config: OptimizeConfig) -> float:
    """x1.5 when ``share`` is above 60 %, x0.6 below 20 %, within [1e-3, 4 x lead_radius]."""
    return adapt_share(radius, share, 1e-3, 4.0 * config.lead_radius)


