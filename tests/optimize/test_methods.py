"""The methods by name (molvae.optimize.methods): every optimizer on the tiny model, within its
budget, scored by the real objective, with several objectives and a custom scorer."""

from __future__ import annotations

import itertools
import math
import textwrap

import pytest

from molvae.chem import PROPERTIES, to_mol
from molvae.objectives import combined_score, parse_objectives
from molvae.optimize import OPTIMIZERS, build_surrogate, optimize, run_method

from .conftest import FAST


@pytest.mark.parametrize("method", sorted(OPTIMIZERS))
def test_each_optimizer_runs_within_budget_and_reports_the_gap(loaded, qed_ensemble, method):
    surrogate, _ = qed_ensemble
    objectives = parse_objectives("qed:max")
    result = run_method(loaded, objectives, method, FAST, surrogate=surrogate)
    assert result.method == method
    assert 0 < result.stats.calls <= FAST.budget
    assert len(result.candidates) == result.stats.calls
    assert [c.call for c in result.candidates] == list(range(1, result.stats.calls + 1))
    assert len({c.smiles for c in result.candidates}) == len(result.candidates)  # never scored twice
    for c in result.candidates:  # the score is the real RDKit value, not the surrogate's
        assert c.score == pytest.approx(PROPERTIES["qed"](to_mol(c.smiles)))
        assert c.surrogate_score is not None and c.surrogate_std >= 0
        assert c.method == method
    ranked = result.ranked()
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    curve = result.best_curve
    assert len(curve) == result.stats.calls and curve[-1] == ranked[0].score
    assert all(b >= a for a, b in itertools.pairwise(x for x in curve if not math.isnan(x)))
    gap = result.gap
    pairs = [(c.surrogate_score, c.score) for c in result.candidates]
    assert gap["surrogate_n"] == len(pairs)
    assert gap["surrogate_mae"] == pytest.approx(sum(abs(p - t) for p, t in pairs) / len(pairs))
    assert gap["surrogate_mae_qed"] == pytest.approx(gap["surrogate_mae"])
    if method == "random":
        assert gap["proposer_n"] == 0
    summary = result.summary()
    assert summary["oracle_calls"] == result.stats.calls and "auc_top10" in summary


def test_gradient_needs_a_surrogate_and_unknown_methods_are_refused(loaded):
    with pytest.raises(ValueError, match="needs a surrogate"):
        optimize(loaded, parse_objectives("qed:max"), ["gradient"], FAST)
    with pytest.raises(ValueError, match="unknown method 'anneal'"):
        optimize(loaded, parse_objectives("qed:max"), ["anneal"], FAST)


def test_window_objective_in_optimization(loaded, training_smiles):
    objectives = parse_objectives("logp:window:1:2,sa:min")
    surrogate, info = build_surrogate(loaded, objectives, "auto", training_smiles, config=FAST)
    assert info["kind"] == "ensemble" and surrogate.labels == ("logp", "sa")
    result = optimize(loaded, objectives, ["gradient", "random"], FAST, surrogate=surrogate, surrogate_info=info)
    ranked = result.ranked()
    assert ranked and len({c.smiles for c in ranked}) == len(ranked)
    for c in ranked:
        mol = to_mol(c.smiles)
        assert c.values["logp"] == pytest.approx(PROPERTIES["logp"](mol))
        assert c.score == pytest.approx(combined_score(objectives, c.values))
        assert 0.0 <= c.score <= 1.0
        assert set(c.surrogate_values) == {"logp", "sa"}


def test_custom_scorer_in_optimization(loaded, training_smiles, tmp_path, monkeypatch):
    (tmp_path / "my_scorers.py").write_text(textwrap.dedent("""
        def heavy_atoms_plus_one(mol):
            return mol.GetNumHeavyAtoms() + 1.0
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    objectives = parse_objectives("my_scorers:heavy_atoms_plus_one:max")
    surrogate, info = build_surrogate(loaded, objectives, "ensemble", training_smiles, config=FAST)
    assert surrogate.labels == ("my_scorers:heavy_atoms_plus_one",)
    result = optimize(loaded, objectives, ["gradient"], FAST, surrogate=surrogate)
    for c in result.methods["gradient"].candidates:
        assert c.score == to_mol(c.smiles).GetNumHeavyAtoms() + 1.0
