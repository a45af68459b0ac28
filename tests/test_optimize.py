"""Latent-space optimization (molvae.optimize) and ``molvae optimize`` (molvae.cli_optimize)."""

from __future__ import annotations

import argparse
import itertools
import json
import math
import textwrap

import pandas as pd
import pytest
import torch

from molvae.checkpoint import load_model
from molvae.chem import PROPERTIES, tanimoto, to_mol
from molvae.cli.optimize import cmd_optimize, register
from molvae.objectives import Filters, combined_score, parse_objectives
from molvae.optimize import (
    OPTIMIZERS,
    Candidate,
    EnsembleSurrogate,
    HeadSurrogate,
    OptimizeConfig,
    Oracle,
    build_surrogate,
    fit_ensemble,
    lead_summary,
    optimize,
    optimize_config_from_dict,
    optimize_leads,
    run_method,
    surrogate_gap,
    surrogate_score,
    top_k_auc,
)

from .conftest import ASPIRIN, CAFFEINE, MOLECULES_CSV, tiny_config

ETHANOL = "CCO"
BENZENE = "c1ccccc1"
PHENOL = "Oc1ccccc1"
TOLUENE = "Cc1ccccc1"
CATECHOL = "Oc1ccccc1O"
SELENIUM = "C[Se]C"  # Se is not in the fixture's vocabulary: cannot be encoded

# Small budgets and batches: every optimizer finishes in about a second on the tiny model.
FAST = OptimizeConfig(budget=12, batch_size=4, bo_initial=4, bo_raw_samples=16, bo_restarts=2, bo_fit_iterations=10,
                      bo_acquisition_iterations=5, steps_per_round=2, surrogate_molecules=64, surrogate_epochs=20,
                      surrogate_hidden=16, max_rounds=30, max_stale_rounds=4)


@pytest.fixture(scope="module")
def loaded(trained_run):
    """The session's tiny model (no property head)."""
    return load_model(trained_run.files["checkpoint"])


@pytest.fixture(scope="module")
def head_model(tmp_path_factory):
    """A tiny model with a joint property head for QED and logP."""
    from molvae.experiment import train_run

    out = tmp_path_factory.mktemp("head")
    config = tiny_config(out, 'model.property_names=["qed","logp"]', "sample.n=0")
    summary = train_run(MOLECULES_CSV, config, out / "model")
    return load_model(summary.files["checkpoint"])


@pytest.fixture(scope="module")
def training_smiles():
    return pd.read_csv(MOLECULES_CSV)["SMILES"].tolist()


@pytest.fixture(scope="module")
def qed_ensemble(loaded, training_smiles):
    surrogate, info = build_surrogate(loaded, parse_objectives("qed:max"), "ensemble", training_smiles, config=FAST)
    return surrogate, info


class ScriptedDecoder:
    """Stands in for Oracle._decode (set on the class): point i decodes once, to script[int(z[i, 0])]
    (None = invalid), a canonical string unless the entry is a ``(smiles, False)`` pair."""

    def __init__(self, script: list[str | None | tuple[str, bool]]):
        self.script = script

    def __call__(self, z, templates=None):
        entries = [self.script[int(round(float(v)))] for v in z[:, 0]]
        return [[entry if isinstance(entry, tuple) else (entry, entry is not None)] for entry in entries]


def points(indices: list[int], latent_dim: int) -> torch.Tensor:
    z = torch.zeros(len(indices), latent_dim)  # (N, Z)
    z[:, 0] = torch.tensor(indices, dtype=torch.float32)
    return z


# --- pure pieces ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["qed:max", "sa:min", "logp:window:2:3", "logp:window:2:3,sa:min:weight=2",
                                  "qed:max,logp:window:1:4:width=0.5,sa:min"])
def test_surrogate_score_matches_the_objectives_module(spec):
    objectives = parse_objectives(spec)
    generator = torch.Generator().manual_seed(0)
    values = torch.rand(50, len(objectives), generator=generator, dtype=torch.float64) * 6  # (N, P)
    expected = [combined_score(objectives, {o.label: float(v) for o, v in zip(objectives, row)}) for row in values]
    assert surrogate_score(objectives, values).tolist() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_window_surrogate_score_has_a_gradient_toward_the_window():
    objectives = parse_objectives("logp:window:2:3")
    value = torch.tensor([[4.0], [0.5]], requires_grad=True)
    surrogate_score(objectives, value).sum().backward()
    assert value.grad[0, 0] < 0 < value.grad[1, 0]  # above the window: go down; below it: go up


def test_top_k_auc_follows_pmo():
    assert top_k_auc([], k=10, budget=100) == 0.0
    assert top_k_auc([1.0] * 100, k=10, budget=100, freq=10) == pytest.approx(0.95)
    # stopping early extends the last value flat to the budget
    assert top_k_auc([1.0] * 50, k=1, budget=100, freq=10) == pytest.approx((5 + 40 + 50) / 100)
    # a call without a score counts as a call and never enters the top-k
    assert top_k_auc([None, 1.0], k=1, budget=2, freq=1) == pytest.approx((0 + 0.5) / 2)


def test_optimize_config_rejects_unknown_and_bad_values():
    assert optimize_config_from_dict({"budget": 5, "prior_weight": 0}).prior_weight == 0.0
    with pytest.raises(ValueError, match="unknown key 'budjet'"):
        optimize_config_from_dict({"budjet": 5})
    with pytest.raises(ValueError, match="optimize.budget must be an integer"):
        optimize_config_from_dict({"budget": "many"})
    with pytest.raises(ValueError, match="min_similarity"):
        OptimizeConfig(min_similarity=1.5)
    with pytest.raises(ValueError, match="bo_acquisition"):
        OptimizeConfig(bo_acquisition="ei")


def test_ensemble_learns_a_simple_function_and_reports_uncertainty():
    generator = torch.Generator().manual_seed(1)
    z = torch.randn(300, 6, generator=generator)  # (N, Z)
    y = torch.stack([2 * z[:, 0] + 1, z[:, 1] - 0.5 * z[:, 2]], dim=1)  # (N, 2)
    ensemble, metrics = fit_ensemble(z, y, ["a", "b"], n_members=3, hidden=32, epochs=40, seed=0)
    assert metrics["val_r2_a"] > 0.9 and metrics["val_r2_b"] > 0.8
    members = ensemble.members(torch.randn(7, 6, generator=generator))
    assert members.shape == (3, 7, 2) and float(members.std(dim=0).mean()) > 0
    again, _ = fit_ensemble(z, y, ["a", "b"], n_members=3, hidden=32, epochs=40, seed=0)
    assert torch.equal(ensemble.members(z[:5]), again.members(z[:5]))  # seeded: reproducible
    assert isinstance(ensemble, EnsembleSurrogate)


# --- the oracle -------------------------------------------------------------------------------

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


# --- optimizers on the tiny model ---------------------------------------------------------------

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


@pytest.mark.parametrize("acquisition", ["ts", "qucb"])
def test_bo_acquisitions_keep_the_budget_and_are_seeded(loaded, acquisition):
    config = optimize_config_from_dict({"bo_acquisition": acquisition, "bo_ts_candidates": 64, "budget": 24}, FAST)
    result = run_method(loaded, parse_objectives("qed:max"), "bo", config)
    assert 0 < result.stats.calls <= config.budget
    assert result.gap["proposer_n"] > 0  # the GP proposed points after the initial design
    again = run_method(loaded, parse_objectives("qed:max"), "bo", config)
    assert [c.smiles for c in again.candidates] == [c.smiles for c in result.candidates]  # seeded


def test_bo_initial_design_is_the_surrogates_favourites(loaded, monkeypatch):
    """With a surrogate, BO's initial points are the best-predicted of bo_screen times as many draws."""

    class FirstCoordinate:  # predicts "qed" = z[0]
        labels = ("qed",)

        def members(self, z):
            return z[:, :1].unsqueeze(0)  # (1, N, 1)

    initial = []
    evaluate = Oracle.evaluate

    def spy(self, z, step, proposer_score=None):
        if step == 0:
            initial.append(z.clone())
        return evaluate(self, z, step, proposer_score)

    monkeypatch.setattr(Oracle, "evaluate", spy)
    config = optimize_config_from_dict({"budget": 16, "bo_initial": 8, "bo_screen": 20}, FAST)
    run_method(loaded, parse_objectives("qed:max"), "bo", config, surrogate=FirstCoordinate())
    run_method(loaded, parse_objectives("qed:max"), "bo", optimize_config_from_dict({"bo_screen": 1}, config),
               surrogate=FirstCoordinate())
    screened, plain = initial
    assert screened.shape == plain.shape == (8, loaded.model.config.latent_dim)
    assert float(screened[:, 0].min()) > float(plain[:, 0].median())  # the top 8 of 160 draws
    with pytest.raises(ValueError, match="bo_screen"):
        optimize_config_from_dict({"bo_screen": 0})


def test_neighbourhood_without_a_seed_explores_around_its_best_molecules(loaded, monkeypatch):
    """From random starts the neighbourhood search is a population search: after a round of prior
    draws, three quarters of each round lie within twice the radius of a point that scored a new
    molecule (one of the best 16 so far), and a quarter are fresh prior draws."""
    rounds = []
    evaluate = Oracle.evaluate

    def spy(self, z, step, proposer_score=None, templates=None):
        assert templates is None  # rewrites are for searches around a seed
        outcomes = evaluate(self, z, step, proposer_score, templates)
        rounds.append((z.clone(), outcomes))
        return outcomes

    monkeypatch.setattr(Oracle, "evaluate", spy)
    config = optimize_config_from_dict({"budget": 40, "batch_size": 8, "lead_radius": 0.5}, FAST)
    result = run_method(loaded, parse_objectives("qed:max"), "neighbourhood", config)
    assert 0 < result.stats.calls <= 40 and len(rounds) >= 2
    first_z, first_outcomes = rounds[0]
    scored = first_z[[o.status == "new" for o in first_outcomes]]  # (S, Z)
    assert len(scored) > 0
    second_z, _ = rounds[1]
    fresh, around = second_z[:2], second_z[2:]  # a quarter of 8 fresh, then 6 around the elites
    radius = config.lead_radius / 2  # the starting radius; points lie at 0.25x .. 2x of it
    assert float(torch.cdist(around, scored).min(dim=1).values.max()) <= 2 * radius + 1e-5
    assert float(torch.cdist(fresh, scored).min(dim=1).values.min()) > 1e-3  # not copies of elites


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


def test_head_surrogate_is_used_when_it_covers_the_objectives(head_model, training_smiles):
    surrogate, info = build_surrogate(head_model, parse_objectives("logp:window:1:3,qed:max"), "auto", training_smiles)
    assert info["kind"] == "head" and isinstance(surrogate, HeadSurrogate)
    z = torch.randn(5, head_model.model.config.latent_dim)
    members = surrogate.members(z)
    assert members.shape == (1, 5, 2)
    expected = head_model.model.predict_properties(z)  # head columns are (qed, logp); ours (logp, qed)
    assert torch.allclose(members[0], expected[:, [1, 0]])
    _, info = build_surrogate(head_model, parse_objectives("sa:min"), "auto", training_smiles, config=FAST)
    assert info["kind"] == "ensemble"  # the head does not predict SA
    with pytest.raises(ValueError, match="property head predicts"):
        build_surrogate(head_model, parse_objectives("sa:min"), "head")


def test_surrogate_gap_is_nan_without_predictions():
    candidate = Candidate("CCO", 0.4, {"qed": 0.4}, (), None, "random", 1, 1)
    gap = surrogate_gap([candidate])
    assert gap["surrogate_n"] == 0 and math.isnan(gap["surrogate_mae"])


# --- lead optimization -----------------------------------------------------------------------

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


# --- the command line ------------------------------------------------------------------------

def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="molvae")
    register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["optimize", *argv])


FAST_FLAGS = ["--budget", "10", "--batch-size", "4", "--set", "bo_initial=4", "--set", "bo_raw_samples=16",
              "--set", "bo_restarts=2", "--set", "steps_per_round=2", "--set", "surrogate_epochs=20",
              "--set", "surrogate_molecules=64", "--set", "max_stale_rounds=4", "--set", "surrogate_hidden=16",
              "--set", "bo_fit_iterations=10", "--set", "bo_acquisition_iterations=5"]


def test_cli_random_starts_writes_outputs_and_mlflow_runs(trained_run, tmp_path, capsys):
    out = tmp_path / "opt"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    args = parse(["--model", str(trained_run.files["checkpoint"]), "--objective", "logp:window:1:2,sa:min",
                  "--method", "gradient,random", "--out", str(out), "--tracking-uri", uri,
                  "--experiment", "test-optimize", *FAST_FLAGS])
    assert cmd_optimize(args) == 0
    for name in ("best.csv", "candidates.csv", "summary.csv", "summary.json", "best.png", "curve.png"):
        assert (out / name).stat().st_size > 0, name
    best = pd.read_csv(out / "best.csv")
    assert {"smiles", "score", "logp", "sa", "surrogate_score", "surrogate_logp", "novel", "method", "step",
            "call"} <= set(best.columns)
    assert list(best["score"]) == sorted(best["score"], reverse=True)
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["gradient", "random"]
    assert (summary["oracle_calls"] <= 10).all()
    assert json.loads((out / "summary.json").read_text())["objectives"] == "logp:window:1.0:2.0,sa:min"
    assert "MLflow run" in capsys.readouterr().out

    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("test-optimize")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and sorted(r.info.run_name for r in children) == ["gradient", "random"]
    assert all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in children)
    assert parents[0].data.tags["molvae.model"].endswith("model.pt")
    assert all(r.data.metrics["oracle_calls"] <= 10 for r in children)
    assert {a.path for a in client.list_artifacts(parents[0].info.run_id)} >= {"best.csv", "curve.png"}
    assert parents[0].data.metrics["random_oracle_calls"] <= 10 and "gradient_top1_mean" in parents[0].data.metrics


@pytest.mark.parametrize("beam, rewrites", [(1, 3), (4, 3), (1, 0)])
def test_neighbourhood_search_adapts_its_radius_and_records_an_empty_neighbourhood(loaded, beam, rewrites):
    """Budget never exceeded, nothing below the floor, and a floor nothing can clear ends as a recorded
    failure (no candidate, no improvement) instead of an error or a loop; with greedy or beam decodes,
    with rewrites of the parents or sampled decodes."""
    objectives = parse_objectives("qed:max")
    config = optimize_config_from_dict({"min_similarity": 0.3, "lead_radius": 2.0, "budget": 12, "batch_size": 6,
                                        "max_stale_rounds": 4, "decode_beam": beam, "rewrites": rewrites}, FAST)
    (result,) = optimize_leads(loaded, [CAFFEINE], objectives, "neighbourhood", config)
    assert result.stats.calls <= 12 and all(c.similarity >= 0.3 for c in result.candidates)
    assert result.stats.decodes >= 2 * result.stats.calls  # greedy (or beam) and sampled decodes of each point
    impossible = optimize_config_from_dict({"min_similarity": 1.0, "budget": 12, "batch_size": 6,
                                            "max_stale_rounds": 3, "decode_beam": beam, "rewrites": rewrites}, FAST)
    (stuck,) = optimize_leads(loaded, [CAFFEINE], objectives, "neighbourhood", impossible)
    assert stuck.status == "ok" and not stuck.success and stuck.best is None and stuck.improvement == 0.0
    assert stuck.stats.calls == 0 and stuck.stats.below_floor + stuck.stats.duplicates + stuck.stats.invalid > 0


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


def test_neighbourhood_around_a_seed_rewrites_the_seed_and_its_best_molecules(loaded, monkeypatch):
    """Around a seed the sampled decodes are rewrites: the first round's templates are the seed's
    SELFIES, later ones the seed's or a molecule the search scored (parents at their own encoding)."""
    from molvae.sample import encode_smiles

    rounds = []
    evaluate = Oracle.evaluate

    def spy(self, z, step, proposer_score=None, templates=None):
        rounds.append([tuple(t) for t in templates])
        return evaluate(self, z, step, proposer_score, templates)

    monkeypatch.setattr(Oracle, "evaluate", spy)
    config = optimize_config_from_dict({"min_similarity": 0.2, "budget": 40, "batch_size": 3,
                                        "max_stale_rounds": 4}, FAST)
    (result,) = optimize_leads(loaded, [CAFFEINE], parse_objectives("qed:max"), "neighbourhood", config)

    def template(smiles):  # the standardized molecule's SELFIES, as the model reads it; a parent it
        encoded = encode_smiles(loaded, [smiles])  # cannot read gets an empty one (a plain sampled decode)
        return tuple(loaded.vocab.encode(encoded.selfies[0])[1:-1]) if len(encoded.index) else ()

    assert set(rounds[0]) == {template(result.smiles)}
    allowed = {template(result.smiles)} | {template(c.smiles) for c in result.candidates}
    assert all(set(r) <= allowed for r in rounds) and len(rounds) > 1
    assert result.stats.calls <= 40 and all(c.similarity >= 0.2 for c in result.candidates)
    per_point = 1 + config.rewrites  # the greedy decode and the rewrites of each point
    assert result.stats.decodes == per_point * 3 * len(rounds)


@pytest.mark.parametrize("method", ["random", "gradient", "bo"])
def test_other_methods_around_a_seed_rewrite_the_seed(loaded, qed_ensemble, method, monkeypatch):
    """Random sampling, gradient ascent and BO around a seed decode each point greedily and as
    rewrites of the seed's SELFIES; with ``rewrites = 0``, one plain sampled decode per point."""
    from molvae.chem import encode_selfies

    surrogate, _ = qed_ensemble
    rounds = []
    evaluate = Oracle.evaluate

    def spy(self, z, step, proposer_score=None, templates=None):
        rounds.append((z.size(0), templates, self.decodes_per_point))
        return evaluate(self, z, step, proposer_score, templates)

    monkeypatch.setattr(Oracle, "evaluate", spy)
    for rewrites in (3, 0):
        rounds.clear()
        config = optimize_config_from_dict({"min_similarity": 0.2, "budget": 20, "rewrites": rewrites}, FAST)
        (result,) = optimize_leads(loaded, [CAFFEINE], parse_objectives("qed:max"), method, config,
                                   surrogate=surrogate)
        seed = loaded.vocab.encode(encode_selfies(result.smiles))[1:-1]
        assert rounds and result.stats.calls <= 20 and all(c.similarity >= 0.2 for c in result.candidates)
        for points, templates, per_point in rounds:
            if rewrites:
                assert templates == [seed] * points and per_point == 1 + rewrites
            else:
                assert templates is None and per_point == config.decodes_per_point


def test_cli_lead_optimization_without_tracking(trained_run, tmp_path):
    seeds = tmp_path / "leads.csv"
    seeds.write_text(f"name,smiles\naspirin,{ASPIRIN}\nselenide,{SELENIUM}\n")
    out = tmp_path / "leads"
    args = parse(["--model", str(trained_run.files["checkpoint"]), "--objective", "qed:max", "--seeds", str(seeds),
                  "--min-similarity", "0.2", "--method", "random", "--out", str(out), "--no-track", *FAST_FLAGS])
    assert cmd_optimize(args) == 0
    leads = pd.read_csv(out / "leads.csv")
    assert list(leads["seed_input"]) == [ASPIRIN, SELENIUM]
    assert {"start_score", "best_score", "improvement", "similarity", "success"} <= set(leads.columns)
    assert leads.loc[1, "status"].startswith("unknown_token")
    best = pd.read_csv(out / "best.csv")
    assert (best["similarity"] >= 0.2).all() if len(best) else True
    assert (out / "curve.png").exists() and (out / "best.png").exists()


@pytest.mark.parametrize("carries_sample", [True, False])
def test_cli_default_model_works_when_its_training_file_is_absent(tmp_path, monkeypatch, caplog, carries_sample):
    """The pretrained model in a fresh clone, its training file not there: gradient ascent fits its
    surrogate on the training sample the checkpoint carries (or, for an older checkpoint without
    one, on the bundled MOSES sample) instead of refusing to run."""
    from molvae.checkpoint import LoadedModel

    monkeypatch.setattr(LoadedModel, "data_path", property(lambda self: str(tmp_path / "not_fetched.csv.gz")))
    if not carries_sample:
        monkeypatch.setattr(LoadedModel, "training_sample", property(lambda self: None))
    out = tmp_path / "default"
    caplog.set_level("INFO", logger="molvae")
    # TPSA: a property no head of the shipped model predicts, so a surrogate is always fitted
    args = parse(["--objective", "tpsa:max", "--method", "gradient", "--device", "cpu", "--out", str(out),
                  "--no-track", *FAST_FLAGS])
    assert cmd_optimize(args) == 0
    assert ("surrogate fitted on the bundled moses_sample_25k.csv" in caplog.text) != carries_sample
    assert "using the shipped lead model" in caplog.text  # the model that reads and optimizes molecules
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["gradient"] and 0 < summary.loc[0, "oracle_calls"] <= 10


def test_cli_reads_a_run_file_and_refuses_unknown_keys(trained_run, tmp_path):
    recipe = tmp_path / "run.toml"
    recipe.write_text('objective = "qed:max"\nmethods = ["random"]\n[optimize]\nbudget = 6\nbatch_size = 3\n'
                      '[filters]\nmax_mw = 600\n')
    out = tmp_path / "recipe"
    args = parse(["--model", str(trained_run.files["checkpoint"]), "--config", str(recipe), "--out", str(out),
                  "--no-track", "--surrogate", "none"])
    assert cmd_optimize(args) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["random"] and summary.loc[0, "oracle_calls"] <= 6
    recipe.write_text('objective = "qed:max"\nbugdet = 6\n')
    with pytest.raises(ValueError, match="unknown key 'bugdet'"):
        cmd_optimize(parse(["--model", str(trained_run.files["checkpoint"]), "--config", str(recipe),
                            "--out", str(out), "--no-track"]))
    with pytest.raises(ValueError, match="unknown method"):
        cmd_optimize(parse(["--model", str(trained_run.files["checkpoint"]), "--objective", "qed:max",
                            "--method", "anneal", "--out", str(out), "--no-track"]))


def test_prior_draws_use_the_configured_exemplar_spread():
    from molvae.checkpoint import PRETRAINED, load_model
    from molvae.optimize.search import draw_starts

    model = load_model(PRETRAINED).model
    exemplars = model.exemplars.means.float()  # (K, Z)
    tight = draw_starts(6, model, None, 1.0, torch.Generator().manual_seed(0), torch.device("cpu"), spread=1e-6)
    assert torch.cdist(tight, exemplars).min(dim=1).values.max() < 1e-2  # at the exemplars themselves
    own = draw_starts(6, model, None, 1.0, torch.Generator().manual_seed(0), torch.device("cpu"), spread=0.0)
    assert torch.equal(own, model.sample_latent(6, torch.Generator().manual_seed(0)))  # 0: the model's own spread
    assert OptimizeConfig().prior_spread == 1.9
    with pytest.raises(ValueError, match="prior_spread"):
        OptimizeConfig(prior_spread=-1.0)


def test_starts_around_a_seed_lie_within_the_lead_radius():
    # random baseline, gradient restarts and BO's first design: lead_radius is a latent distance
    from molvae.checkpoint import PRETRAINED_LEAD, load_model
    from molvae.optimize.search import draw_starts

    model = load_model(PRETRAINED_LEAD).model
    seed = torch.randn(model.config.latent_dim, generator=torch.Generator().manual_seed(1))
    z = draw_starts(500, model, seed, 0.8, torch.Generator().manual_seed(0), torch.device("cpu"))
    distance = (z - seed).norm(dim=1)
    assert distance.max() <= 0.8 + 1e-5 and distance.min() < 0.1 < 0.7 < distance.max()  # spread over 0 .. radius
    directions = (z - seed) / distance.unsqueeze(1)
    assert directions.mean(dim=0).norm() < 0.2  # no preferred direction
