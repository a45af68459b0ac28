"""What an optimization run is configured by: :class:`OptimizeConfig` and its TOML table."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

from molvae.sample import REFINE_STEPS

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
    screen_by_calls: int = 0  # each round scores only this many new molecules, those whose nearest scored molecules
    # scored best (a surrogate fitted online to the calls, molvae.optimize.oracle.nearest_called_prediction); 0 = all
    neighbourhood_elites: int = 0  # neighbourhood search explores around this many best molecules (1 = hill
    # climbing); 0 = 16 from random starts, 1 around a seed (16 there was within noise of 1: docs/results.md)
    encode_parents: bool = False  # from random starts: a molecule found becomes a parent at its own encoding, not at the
    # point it was decoded from (around a seed always; docs/studies/2026-12-07-population-search-levers.md)
    finetune_every: int = 0  # from random starts: every this many rounds, fine-tune a copy of the model on the molecules
    # scored so far, the best weighted most (weighted retraining, molvae.optimize.finetune); parents at their encodings; 0 = off
    finetune_steps: int = 8  # Adam steps (64 molecules each) per fine-tuning round
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
                    "bo_screen", "bo_ts_candidates", "finetune_steps",
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
        for name in ("screen_top", "screen_by_calls", "rewrites", "refine_steps", "finetune_every"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"optimize.{name} must be an integer >= 0, got {value!r}")
        if self.bo_acquisition not in ("qlogei", "qei", "qucb", "ts"):
            raise ValueError(f"optimize.bo_acquisition must be qlogei, qei, qucb or ts, got {self.bo_acquisition!r}")


POPULATION_SEARCH: dict[str, object] = {"batch_size": 256, "prior_spread": 1.0, "canonical_decodes": True,
                                         "decodes_per_point": 4, "screen_by_calls": 32, "surrogate": "none",
                                         "finetune_every": 5}
"""The population search's settings from random starts, chosen on PMO's two tuning tasks
(``zaleplon_mpo``, ``perindopril_mpo``; docs/studies/2026-12-07-pmo-tuning.md and
docs/studies/2026-12-07-population-search-levers.md), weighted retraining included. No surrogate: it
would only annotate candidates, and fitting one labels molecules with the objective outside the budget."""


def random_start_settings(table: Mapping[str, object], methods: Sequence[str]) -> dict[str, object]:
    """``table`` over :data:`POPULATION_SEARCH` when ``methods`` is the population search alone (the
    default from random starts); a key the user set wins. Beside other methods the population search
    still gets the preset, from :func:`method_settings`; the others keep ``table``.

    >>> random_start_settings({"batch_size": 64}, ["neighbourhood"])["batch_size"], random_start_settings({}, ["bo"])
    (64, {})
    """
    return {**POPULATION_SEARCH, **table} if tuple(methods) == ("neighbourhood",) else dict(table)


def method_settings(table: Mapping[str, object], methods: Sequence[str],
                    from_leads: bool) -> dict[str, OptimizeConfig]:
    """Each method's :class:`OptimizeConfig`: ``table`` (the keys the user set) over the defaults and,
    for the population search from random starts, over :data:`POPULATION_SEARCH` too, whatever runs
    beside it; so ``neighbourhood,random`` compares the default search with plain prior sampling.

    >>> settings = method_settings({"budget": 50}, ["neighbourhood", "random"], from_leads=False)
    >>> settings["neighbourhood"].finetune_every, settings["random"].finetune_every, settings["random"].budget
    (5, 0, 50)
    """
    return {method: optimize_config_from_dict({**POPULATION_SEARCH, **table}
                                              if method == "neighbourhood" and not from_leads else table)
            for method in methods}


def settings_per_method(configs: Mapping[str, OptimizeConfig], shared: OptimizeConfig) -> dict[str, dict[str, object]]:
    """Per method whose settings differ from ``shared``, the keys that differ: what a run records beside
    its shared settings.

    >>> own = settings_per_method(method_settings({}, ["neighbourhood", "random"], False), OptimizeConfig())
    >>> list(own), own["neighbourhood"]["finetune_every"]
    (['neighbourhood'], 5)
    """
    common = asdict(shared)
    return {method: {key: value for key, value in asdict(own).items() if value != common[key]}
            for method, own in configs.items() if own != shared}


def optimize_config_from_dict(table: Mapping[str, object], base: OptimizeConfig | None = None) -> OptimizeConfig:
    """:class:`OptimizeConfig` from a TOML-style table (over ``base``), read as every run file is
    (:func:`molvae.config.build_dataclass`): values coerced and range-checked, an unknown key an
    error naming it.

    >>> optimize_config_from_dict({"budget": 50, "learning_rate": 1}).learning_rate
    1.0
    >>> optimize_config_from_dict({"budjet": 50})
    Traceback (most recent call last):
    ...
    molvae.errors.ConfigError: unknown key 'budjet' in [optimize]; known keys: budget, batch_size, ...
    """
    from molvae.config import build_dataclass

    return build_dataclass(OptimizeConfig, table, "optimize", base or OptimizeConfig())
