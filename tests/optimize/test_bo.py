"""Bayesian optimization (molvae.optimize.bo): its acquisitions and its initial design."""

from __future__ import annotations

import pytest

from molvae.objectives import parse_objectives
from molvae.optimize import optimize_config_from_dict, run_method

from .conftest import FAST


@pytest.mark.parametrize("acquisition", ["ts", "qucb"])
def test_bo_acquisitions_keep_the_budget_and_are_seeded(loaded, acquisition):
    config = optimize_config_from_dict({"bo_acquisition": acquisition, "bo_ts_candidates": 64, "budget": 24}, FAST)
    result = run_method(loaded, parse_objectives("qed:max"), "bo", config)
    assert 0 < result.stats.calls <= config.budget
    assert result.gap["proposer_n"] > 0  # the GP proposed points after the initial design
    again = run_method(loaded, parse_objectives("qed:max"), "bo", config)
    assert [c.smiles for c in again.candidates] == [c.smiles for c in result.candidates]  # seeded


def test_bo_initial_design_is_the_surrogates_favourites(loaded, evaluations):
    """With a surrogate, BO's initial points are the best-predicted of bo_screen times as many draws."""

    class FirstCoordinate:  # predicts "qed" = z[0]
        labels = ("qed",)

        def members(self, z):
            return z[:, :1].unsqueeze(0)  # (1, N, 1)

    config = optimize_config_from_dict({"budget": 16, "bo_initial": 8, "bo_screen": 20}, FAST)
    run_method(loaded, parse_objectives("qed:max"), "bo", config, surrogate=FirstCoordinate())
    run_method(loaded, parse_objectives("qed:max"), "bo", optimize_config_from_dict({"bo_screen": 1}, config),
               surrogate=FirstCoordinate())
    screened, plain = [e.z for e in evaluations if e.step == 0]
    assert screened.shape == plain.shape == (8, loaded.model.config.latent_dim)
    assert float(screened[:, 0].min()) > float(plain[:, 0].median())  # the top 8 of 160 draws
    with pytest.raises(ValueError, match="bo_screen"):
        optimize_config_from_dict({"bo_screen": 0})
