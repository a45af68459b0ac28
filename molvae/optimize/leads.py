"""Lead optimization: each seed molecule optimized from its own encoding, under a similarity floor."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from molvae.checkpoint import LoadedModel
from molvae.chem import canonical_smiles
from molvae.objectives import Filters, Objective, score_smiles
from molvae.optimize.config import OptimizeConfig
from molvae.optimize.methods import check_method, new_oracle
from molvae.optimize.oracle import Candidate, OracleStats
from molvae.optimize.surrogates import Surrogate
from molvae.sample import encode_smiles

log = logging.getLogger(__name__)


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
    optimizer = check_method(method)
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
            oracle = new_oracle(loaded, objectives, method, config, filters, surrogate, reference=smiles,
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
