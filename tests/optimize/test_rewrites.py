"""Rewrites of a seed's SELFIES (molvae.optimize.rewrites), as the other searches use them around a seed."""

from __future__ import annotations

import pytest

from molvae.objectives import parse_objectives
from molvae.optimize import optimize_config_from_dict, optimize_leads

from ..conftest import CAFFEINE
from .conftest import FAST


@pytest.mark.parametrize("method", ["random", "gradient", "bo"])
def test_other_methods_around_a_seed_rewrite_the_seed(loaded, qed_ensemble, method, evaluations):
    """Random sampling, gradient ascent and BO around a seed decode each point greedily and as
    rewrites of the seed's SELFIES; with ``rewrites = 0``, one plain sampled decode per point."""
    from molvae.chem import encode_selfies

    surrogate, _ = qed_ensemble
    for rewrites in (3, 0):
        evaluations.clear()
        config = optimize_config_from_dict({"min_similarity": 0.2, "budget": 20, "rewrites": rewrites}, FAST)
        (result,) = optimize_leads(loaded, [CAFFEINE], parse_objectives("qed:max"), method, config,
                                   surrogate=surrogate)
        seed = loaded.vocab.encode(encode_selfies(result.smiles))[1:-1]
        assert evaluations and result.stats.calls <= 20 and all(c.similarity >= 0.2 for c in result.candidates)
        for e in evaluations:
            if rewrites:
                assert e.templates == [seed] * e.z.size(0) and e.decodes_per_point == 1 + rewrites
            else:
                assert e.templates is None and e.decodes_per_point == config.decodes_per_point
