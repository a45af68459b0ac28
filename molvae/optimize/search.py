"""The searches every method is built from: starts drawn from the prior, random sampling (the
baseline) and gradient ascent on a surrogate."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch

from molvae.model import MolVAE
from molvae.objectives import Objective
from molvae.optimize.config import OptimizeConfig
from molvae.optimize.oracle import Oracle
from molvae.optimize.rewrites import SeedRewrites
from molvae.optimize.surrogates import Surrogate, surrogate_score

log = logging.getLogger(__name__)


# --- optimizers -----------------------------------------------------------------------------

Optimizer = Callable[[Oracle, "Surrogate | None", Sequence[Objective], OptimizeConfig, "torch.Tensor | None"], None]


def draw_starts(n: int, model: MolVAE, start: torch.Tensor | None, radius: float, generator: torch.Generator,
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
    directions = unit_directions(n, model.config.latent_dim, generator, device)  # (n, Z)
    distance = radius * torch.rand(n, 1, generator=generator, device=device)  # (n, 1)
    return start.to(device).unsqueeze(0) + distance * directions  # (n, Z)


def run_random(oracle: Oracle, surrogate: Surrogate | None, objectives: Sequence[Objective],
               config: OptimizeConfig, start: torch.Tensor | None = None) -> None:
    """Baseline: batches of prior samples z ~ p(z) (or points around the seed's z, decoded greedily
    and as rewrites of the seed: :class:`SeedRewrites`) until the budget is spent."""
    generator = torch.Generator(device=oracle.device).manual_seed(config.seed)
    rewrites = SeedRewrites.start(oracle, config, start)
    for step in range(1, config.max_rounds + 1):
        if oracle.should_stop(config.max_stale_rounds):
            break
        z = draw_starts(config.batch_size, oracle.model, start, config.lead_radius, generator, oracle.device,
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
    Around a seed each point is decoded greedily and as rewrites of the seed (:class:`SeedRewrites`).
    """
    if surrogate is None:
        raise ValueError("gradient ascent needs a surrogate (a property head or an ensemble)")
    generator = torch.Generator(device=oracle.device).manual_seed(config.seed)
    n, device = config.batch_size, oracle.device
    if start is None:
        z = draw_starts(n, oracle.model, None, config.lead_radius, generator, device, config.prior_spread)  # (N, Z)
    else:
        z = draw_starts(n, oracle.model, start, 0.1, generator, device)  # (N, Z) close to the seed
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

    rewrites = SeedRewrites.start(oracle, config, start)
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
            fresh = draw_starts(int(restart.sum()), oracle.model, start, config.lead_radius, generator, device,
                                 config.prior_spread)
            z[restart] = fresh
            stale[restart] = 0


def unit_directions(n: int, dim: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    direction = torch.randn(n, dim, generator=generator, device=device)  # (n, dim)
    return direction / direction.norm(dim=1, keepdim=True).clamp(min=1e-12)
