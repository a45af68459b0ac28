"""Bayesian optimization in latent space: a Gaussian process with batch acquisition in a TuRBO-style
trust region (BoTorch, imported only when BO runs)."""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import torch

from molvae.objectives import Objective
from molvae.optimize.config import OptimizeConfig
from molvae.optimize.oracle import Oracle, PointOutcome
from molvae.optimize.rewrites import SeedRewrites
from molvae.optimize.search import draw_starts
from molvae.optimize.surrogates import Surrogate, surrogate_score

log = logging.getLogger(__name__)


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
    score is the best of its greedy decode and its rewrites of the seed (:class:`SeedRewrites`). Randomness comes from
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
    initial = draw_starts(n_initial * screen, oracle.model, start, config.lead_radius, generator, device,
                           config.prior_spread)  # (I * S, D)
    if screen > 1:  # the surrogate's favourites: they cost no oracle call to choose
        with torch.no_grad():
            predicted = surrogate_score(objectives, surrogate.members(initial)).mean(dim=0)  # (I * S,)
        initial = initial[predicted.topk(n_initial).indices]  # (I, D)
    initial = initial.cpu().double()  # (I, D)
    if start is not None:
        initial[0] = centre  # the seed's own encoding
    initial_x = ((initial - lower) / width).clamp(0.0, 1.0)  # (I, D)
    rewrites = SeedRewrites.start(oracle, config, start)
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
