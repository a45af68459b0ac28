"""Optimization from seed molecules (molvae.optimize.leads) under a similarity floor."""

from __future__ import annotations

import pytest

from molvae.chem import PROPERTIES, tanimoto, to_mol
from molvae.objectives import parse_objectives
from molvae.optimize import lead_summary, optimize_config_from_dict, optimize_leads

from ..conftest import ASPIRIN, CAFFEINE
from .conftest import FAST, SELENIUM


@pytest.mark.parametrize("method", ["gradient", "random", "bo", "neighbourhood"])
def test_lead_optimization_respects_the_similarity_floor(loaded, qed_ensemble, method):
    surrogate, _ = qed_ensemble
    floor = 0.3
    config = optimize_config_from_dict({"min_similarity": floor, "lead_radius": 0.5}, FAST)
    seeds = [ASPIRIN, SELENIUM, CAFFEINE]
    results = optimize_leads(loaded, seeds, parse_objectives("qed:max"), method, config, surrogate=surrogate)
    assert [r.input for r in results] == seeds
    skipped = results[1]
    assert skipped.status.startswith("unknown_token") and not skipped.success and skipped.improvement == 0.0
    for r in (results[0], results[2]):
        assert r.status == "ok" and r.start_score == pytest.approx(PROPERTIES["qed"](to_mol(r.smiles)))
        assert r.stats.calls <= config.budget
        reference = to_mol(r.smiles)
        for c in r.candidates:  # nothing below the floor, ever
            assert c.similarity >= floor and c.similarity == pytest.approx(tanimoto(to_mol(c.smiles), reference))
            assert c.smiles != r.smiles  # the seed itself is never charged or returned
        if r.success:
            assert r.best.score > r.start_score and r.improvement == pytest.approx(r.best.score - r.start_score)
            assert r.best.similarity >= floor
        else:
            assert r.improvement == 0.0
    summary = lead_summary(results)
    assert summary["seeds"] == 3 and summary["encoded"] == 2
    assert summary["success_rate"] == sum(r.success for r in results) / 3


def test_floor_to_input_holds_the_floor_against_the_seed_as_written_too(loaded):
    """A charged seed is neutralized before encoding; with floor_to_input every scored molecule is
    also at or above the floor against the molecule as written, and its similarity is the lower one."""
    charged = "CC(=O)Oc1ccccc1C(=O)[O-]"  # aspirin as its anion
    written, objectives = to_mol(charged), parse_objectives("qed:max")
    config = optimize_config_from_dict({"min_similarity": 0.4, "budget": 12, "batch_size": 6, "max_stale_rounds": 4,
                                        "floor_to_input": True}, FAST)
    (result,) = optimize_leads(loaded, [charged], objectives, "neighbourhood", config)
    assert result.smiles != charged and result.candidates
    for c in result.candidates:
        both = (tanimoto(to_mol(c.smiles), written), tanimoto(to_mol(c.smiles), to_mol(result.smiles)))
        assert min(both) >= 0.4 and c.similarity == pytest.approx(min(both))
