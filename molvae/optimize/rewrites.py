"""Rewrites of a seed's SELFIES, and how far they reach: kept where rewritten molecules clear the
similarity floor (shared by the searches that start from a seed)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from molvae.optimize.config import OptimizeConfig
from molvae.optimize.oracle import Oracle, PointOutcome

log = logging.getLogger(__name__)

FLOOR_SHARE_HIGH, FLOOR_SHARE_LOW = 0.6, 0.2  # neighbourhood: grow above, shrink below this share
REWRITE_SPAN = 0.5  # rewrites first cut within the template's last half; adapted like the radius
ABOVE_FLOOR = ("new", "duplicate", "filtered", "unscored", "screened")  # decode statuses of molecules at or above the floor


def adapt_rewrite_span(oracle: Oracle, outcomes: Sequence[PointOutcome]) -> None:
    """The share of rewrites (each point's sampled decodes) at or above the floor sets how much
    they change: the cut span grows above 60 % and shrinks below 20 %."""
    written = [s for o in outcomes for s in o.statuses[-(oracle.decodes_per_point - 1):]]
    share = sum(s in ABOVE_FLOOR for s in written) / max(len(written), 1)
    oracle.rewrite_span = adapt_share(oracle.rewrite_span, share, 0.05, 1.0)


def adapt_share(value: float, share: float, low: float, high: float) -> float:
    """x1.5 when ``share`` is above 60 %, x0.6 below 20 %, within [low, high]."""
    value *= 1.5 if share > FLOOR_SHARE_HIGH else 0.6 if share < FLOOR_SHARE_LOW else 1.0
    return min(max(value, low), high)


@dataclass
class SeedRewrites:
    """Random sampling, gradient ascent and BO around a seed: every point's sampled decodes are
    rewrites of the seed's SELFIES (as the neighbourhood search rewrites its parents), their cut span
    adapted to the share above the floor. Off (plain decodes) without a seed, with ``rewrites = 0``
    or for a seed the model cannot read."""

    oracle: Oracle
    template: list[int] | None

    @classmethod
    def start(cls, oracle: Oracle, config: OptimizeConfig, start: torch.Tensor | None) -> SeedRewrites:
        template = oracle.reference_template() if config.rewrites > 0 and start is not None else None
        if template is not None:
            oracle.decodes_per_point = max(oracle.decodes_per_point, 1 + config.rewrites)
            oracle.rewrite_span = REWRITE_SPAN
        return cls(oracle, template)

    def evaluate(self, z: torch.Tensor, step: int, proposer_score: torch.Tensor | None = None) -> list[PointOutcome]:
        if self.template is None:
            return self.oracle.evaluate(z, step, proposer_score=proposer_score)
        outcomes = self.oracle.evaluate(z, step, proposer_score, templates=[self.template] * z.size(0))
        adapt_rewrite_span(self.oracle, outcomes)
        return outcomes
