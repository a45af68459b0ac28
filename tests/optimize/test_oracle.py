"""The oracle (molvae.optimize.oracle): its budget, cache, similarity floor, screen and filters,
and its account of every decode."""

from __future__ import annotations

import pytest
import torch

from molvae.chem import PROPERTIES, to_mol
from molvae.objectives import Filters, parse_objectives
from molvae.optimize import OptimizeConfig, Oracle

from ..conftest import ETHANOL
from .conftest import BENZENE, CATECHOL, PHENOL, SELENIUM, TOLUENE, ScriptedDecoder, points


def test_oracle_counts_calls_duplicates_invalid_and_keeps_a_cache(loaded, monkeypatch):
    monkeypatch.setattr(Oracle, "_decode", ScriptedDecoder([ETHANOL, None, BENZENE, PHENOL]))
    oracle = Oracle(loaded, parse_objectives("qed:max"), budget=10, method="test")
    z = points([0, 0, 1, 2], loaded.model.config.latent_dim)
    outcomes = oracle.evaluate(z, step=1)
    assert [o.status for o in outcomes] == ["new", "duplicate", "invalid", "new"]
    assert outcomes[1].score == outcomes[0].score == pytest.approx(PROPERTIES["qed"](to_mol(ETHANOL)))
    assert oracle.stats.calls == 2 and oracle.stats.duplicates == 1 and oracle.stats.invalid == 1
    assert oracle.stats.decodes == 4
    oracle.evaluate(z, step=2)  # everything is cached now: no new call
    assert oracle.stats.calls == 2 and oracle.stats.duplicates == 4 and oracle.stats.invalid == 2
    assert [c.call for c in oracle.candidates] == [1, 2]
    assert [c.smiles for c in oracle.candidates] == [ETHANOL, BENZENE]
    assert oracle.stale_rounds == 1


def test_oracle_can_leave_non_canonical_decodes_unscored(loaded, monkeypatch):
    script = [ETHANOL, (BENZENE, False), PHENOL]
    monkeypatch.setattr(Oracle, "_decode", ScriptedDecoder(script))
    z = points([0, 1, 2], loaded.model.config.latent_dim)
    strict = Oracle(loaded, parse_objectives("qed:max"), budget=10, canonical_decodes=True)
    assert [o.status for o in strict.evaluate(z, step=1)] == ["new", "non_canonical", "new"]
    assert strict.stats.calls == 2 and strict.stats.non_canonical == 1 and strict.stats.decodes == 3
    every = Oracle(loaded, parse_objectives("qed:max"), budget=10)  # the default scores every valid decode
    assert [o.status for o in every.evaluate(z, step=1)] == ["new", "new", "new"] and every.stats.non_canonical == 0


def test_oracle_never_exceeds_its_budget(loaded, monkeypatch):
    monkeypatch.setattr(Oracle, "_decode", ScriptedDecoder([ETHANOL, BENZENE, PHENOL, TOLUENE]))
    oracle = Oracle(loaded, parse_objectives("qed:max"), budget=2)
    outcomes = oracle.evaluate(points([0, 1, 2, 3, 0], loaded.model.config.latent_dim), step=1)
    assert [o.status for o in outcomes] == ["new", "new", "unscored", "unscored", "duplicate"]
    assert oracle.stats.calls == 2 and oracle.exhausted and oracle.stats.unscored == 2
    assert len(oracle.candidates) == 2


def test_oracle_similarity_floor_scores_nothing_below_it(loaded, monkeypatch):
    # Tanimoto to phenol: ethanol 0.06, toluene 0.375, catechol 0.5
    monkeypatch.setattr(Oracle, "_decode", ScriptedDecoder([ETHANOL, TOLUENE, CATECHOL, PHENOL]))
    oracle = Oracle(loaded, parse_objectives("logp:max"), budget=10, reference=PHENOL, min_similarity=0.4,
                    known={PHENOL: 1.39})
    outcomes = oracle.evaluate(points([0, 1, 2, 3], loaded.model.config.latent_dim), step=1)
    assert [o.status for o in outcomes] == ["below_floor", "below_floor", "new", "duplicate"]  # seed pre-cached
    assert oracle.stats.calls == 1 and oracle.stats.below_floor == 2
    assert [(c.smiles, c.similarity) for c in oracle.candidates] == [(CATECHOL, 0.5)]
    assert outcomes[3].score == 1.39  # the seed's known score, no call
    with pytest.raises(ValueError, match="reference"):
        Oracle(loaded, parse_objectives("logp:max"), budget=1, min_similarity=0.5)


def test_oracle_screening_scores_what_the_surrogate_ranks_best_and_keeps_the_rest_for_later(loaded, monkeypatch):
    from molvae.sample import encode_smiles

    molecules = [ETHANOL, BENZENE, PHENOL, TOLUENE]
    monkeypatch.setattr(Oracle, "_decode", ScriptedDecoder(molecules))

    class FirstCoordinate:  # predicts QED as the first latent coordinate: a monotone ranking to check against
        labels = ("qed",)

        def members(self, z):
            return z[:, :1].unsqueeze(0)  # (1, N, 1)

    oracle = Oracle(loaded, parse_objectives("qed:max"), budget=10, surrogate=FirstCoordinate(), screen_top=2)
    z = points([0, 1, 2, 3, 1], loaded.model.config.latent_dim)
    outcomes = oracle.evaluate(z, step=1)
    first = encode_smiles(loaded, molecules).mu[:, 0]  # what the screen ranks by
    best_two = {molecules[i] for i in first.argsort(descending=True)[:2].tolist()}
    assert {c.smiles for c in oracle.candidates} == best_two and oracle.stats.calls == 2
    assert {o.smiles for o in outcomes if o.status == "screened"} == set(molecules) - best_two
    assert oracle.stats.screened == 2 + (BENZENE not in best_two)  # benzene twice: screened twice, or a duplicate
    oracle.evaluate(z, step=2)  # the screened two come back: now they are the best two new ones
    assert {c.smiles for c in oracle.candidates} == set(molecules) and oracle.stats.calls == 4
    with pytest.raises(ValueError, match="screen_top"):
        OptimizeConfig(screen_top=-1)
    with pytest.raises(ValueError, match="refine_steps"):
        OptimizeConfig(refine_steps=-1)


def test_oracle_filters_cost_a_call_but_give_no_score(loaded, monkeypatch):
    monkeypatch.setattr(Oracle, "_decode", ScriptedDecoder(["C1CC1C", ETHANOL]))
    oracle = Oracle(loaded, parse_objectives("qed:max"), budget=5, filters=Filters(min_ring_size=5))
    outcomes = oracle.evaluate(points([0, 1], loaded.model.config.latent_dim), step=1)
    assert [o.status for o in outcomes] == ["filtered", "new"]
    assert oracle.stats.calls == 2 and oracle.stats.filtered == 1
    assert oracle.candidates[0].score is None and oracle.candidates[0].failures == ("min_ring_size",)
    assert oracle.best().smiles == ETHANOL


def test_oracle_several_decodes_per_point_keep_the_best(loaded):
    oracle = Oracle(loaded, parse_objectives("qed:max"), budget=50, decodes_per_point=3, seed=0)
    z = torch.randn(4, loaded.model.config.latent_dim, generator=torch.Generator().manual_seed(0))
    outcomes = oracle.evaluate(z, step=1)
    assert oracle.stats.decodes == 12
    assert oracle.stats.calls + oracle.stats.duplicates + oracle.stats.invalid == 12
    for outcome in outcomes:
        if outcome.score is not None:
            assert outcome.score == max(c.score for c in oracle.candidates if c.smiles == outcome.smiles)


def test_screening_by_calls_scores_the_molecules_whose_scored_neighbours_scored_best(loaded, monkeypatch):
    import molvae.optimize.oracle as oracle_module
    from molvae.chem import morgan_words

    monkeypatch.setattr(oracle_module, "SCREEN_BY_CALLS_AFTER", 2)
    molecules = [ETHANOL, BENZENE, PHENOL, "CCCO", TOLUENE, CATECHOL]
    monkeypatch.setattr(Oracle, "_decode", ScriptedDecoder(molecules))
    oracle = Oracle(loaded, parse_objectives("qed:max"), budget=10, screen_by_calls=1)
    latent_dim = loaded.model.config.latent_dim
    oracle.evaluate(points([0, 1], latent_dim), step=1)  # fewer than SCREEN_BY_CALLS_AFTER scored: all scored
    assert oracle.stats.calls == 2
    qed = {s: PROPERTIES["qed"](to_mol(s)) for s in molecules}
    outcomes = oracle.evaluate(points([2, 3], latent_dim), step=2)
    # phenol's nearest scored molecule is benzene, propanol's ethanol: the one with the better-scored neighbour is called
    expected = PHENOL if qed[BENZENE] > qed[ETHANOL] else "CCCO"
    assert [c.smiles for c in oracle.candidates][-1] == expected and oracle.stats.calls == 3
    assert {o.smiles for o in outcomes if o.status == "screened"} == {PHENOL, "CCCO"} - {expected}
    predicted = oracle_module.nearest_called_prediction(
        [morgan_words(to_mol(s)) for s in molecules], oracle._called_fps, oracle._called_scores)
    called = [qed[c.smiles] for c in oracle.candidates]
    assert predicted[0] == pytest.approx(qed[ETHANOL], rel=0.2)  # its own score carries the most weight
    assert all(min(called) - 1e-12 <= p <= max(called) + 1e-12 for p in predicted)  # a weighted mean of scores
    with pytest.raises(ValueError, match="screen_by_calls"):
        OptimizeConfig(screen_by_calls=-1)


def test_oracle_encodings_after_the_model_changed_come_from_the_kept_selfies(loaded):
    """After ``model_changed`` the encodings are recomputed from the SELFIES kept (no standardizing
    again): with the model unchanged, the same means as the first encoding up to float rounding
    across batch shapes; a molecule the model cannot read stays out."""
    oracle = Oracle(loaded, parse_objectives("qed:max"), budget=10)
    first = oracle.encodings([PHENOL, TOLUENE, SELENIUM, PHENOL])
    assert list(first) == [PHENOL, TOLUENE] and oracle.symbols([SELENIUM]) == {}
    oracle.model_changed()
    again = oracle.encodings([TOLUENE, PHENOL])
    for smiles in (PHENOL, TOLUENE):
        assert again[smiles][1] == first[smiles][1]
        torch.testing.assert_close(again[smiles][0], first[smiles][0], rtol=1e-4, atol=1e-5)
