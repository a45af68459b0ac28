"""``molvae optimize`` (molvae.cli.optimize over molvae.optimize.campaign): outputs, MLflow runs,
leads, the default model and run files."""

from __future__ import annotations

import argparse
import json

import pandas as pd
import pytest

from molvae.cli.optimize import cmd_optimize, register

from ..conftest import ASPIRIN
from .conftest import SELENIUM


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


def test_from_random_starts_the_population_search_is_the_default_and_set_keys_win(trained_run, tmp_path):
    from molvae.cli.optimize import load_recipe
    from molvae.optimize import POPULATION_SEARCH

    checkpoint = str(trained_run.files["checkpoint"])
    recipe = load_recipe(parse(["--model", checkpoint, "--objective", "qed:max", "--out", str(tmp_path)]))
    assert recipe.methods == ("neighbourhood",)
    assert {key: getattr(recipe.config, key) for key in POPULATION_SEARCH} == POPULATION_SEARCH
    mine = load_recipe(parse(["--model", checkpoint, "--objective", "qed:max", "--out", str(tmp_path),
                              "--batch-size", "16", "--set", "screen_by_calls=0"]))
    assert mine.config.batch_size == 16 and mine.config.screen_by_calls == 0 and mine.config.prior_spread == 1.0
    other = load_recipe(parse(["--model", checkpoint, "--objective", "qed:max", "--out", str(tmp_path),
                               "--method", "bo,random"]))
    assert other.config.batch_size == 32 and other.config.screen_by_calls == 0  # the preset is the population search's
    around = load_recipe(parse(["--model", checkpoint, "--objective", "qed:max", "--out", str(tmp_path),
                                "--seeds", str(tmp_path / "leads.csv")]))
    assert around.methods == ("neighbourhood", "gradient", "random") and around.config.screen_by_calls == 0
    out = tmp_path / "run"
    assert cmd_optimize(parse(["--model", checkpoint, "--objective", "qed:max", "--out", str(out), "--no-track",
                               "--budget", "40", "--batch-size", "16", "--set", "max_stale_rounds=3"])) == 0
    summary = pd.read_csv(out / "summary.csv")
    assert list(summary["method"]) == ["neighbourhood"] and 0 < summary.loc[0, "oracle_calls"] <= 40


def test_beside_other_methods_the_population_search_keeps_its_preset_and_they_keep_theirs(trained_run, tmp_path):
    """`--method neighbourhood,random` compares the default search with plain prior sampling: the preset
    (screen by calls, weighted retraining, ...) goes to the population search only, a key set goes to both."""
    from molvae.cli.optimize import load_recipe
    from molvae.optimize import POPULATION_SEARCH

    checkpoint = str(trained_run.files["checkpoint"])
    args = ["--model", checkpoint, "--objective", "qed:max", "--method", "neighbourhood,random", "--budget", "40",
            "--set", "max_stale_rounds=3", "--set", "prior_spread=1.5"]
    recipe = load_recipe(parse([*args, "--out", str(tmp_path)]))
    population, baseline = recipe.method_configs["neighbourhood"], recipe.method_configs["random"]
    assert {key: getattr(population, key) for key in POPULATION_SEARCH} == {**POPULATION_SEARCH, "prior_spread": 1.5}
    assert baseline.screen_by_calls == 0 and baseline.finetune_every == 0 and baseline.batch_size == 32
    assert population.budget == baseline.budget == 40 and baseline.prior_spread == 1.5

    out = tmp_path / "both"
    assert cmd_optimize(parse([*args, "--batch-size", "16", "--out", str(out), "--no-track"])) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [row["method"] for row in summary["results"]] == ["neighbourhood", "random"]
    assert all(0 < row["oracle_calls"] <= 40 for row in summary["results"])
    assert summary["optimize_per_method"]["neighbourhood"]["finetune_every"] == 5
    assert "batch_size" not in summary["optimize_per_method"]["neighbourhood"]  # 16 for both: the key set wins
