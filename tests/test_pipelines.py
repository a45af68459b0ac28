"""Every script in pipelines/: --help works, bad input ends in one line and a non-zero exit (never a
traceback), and a tiny real invocation runs."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import MOLECULES_CSV

PIPELINES = Path(__file__).resolve().parent.parent / "pipelines"
SCRIPT_PATHS = {p.name: p for p in PIPELINES.glob("*/*.py")}  # benchmarks/ and studies/
SCRIPTS = sorted(SCRIPT_PATHS)


def run(script: str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT_PATHS[script]), *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


@pytest.mark.parametrize("script", SCRIPTS)
def test_help(script):
    done = run(script, "--help")
    assert done.returncode == 0, done.stderr
    assert "usage:" in done.stdout


BAD_INPUT = {
    "constrained_benchmark.py": ["--data", "no/such.txt", "--out", "{tmp}/o"],  # needs no ../shared
    "custom_objective.py": ["--model", "no/such/model.pt", "--out", "{tmp}/o"],
    "latent_study.py": ["--data", "no/such.csv", "--out", "{tmp}/o"],
    "make_lead_data.py": ["--moses", "no/such.csv.gz", "--out", "{tmp}/o.csv.gz"],
    "make_pmo_fixture.py": ["--tdc037", "no/such", "--out", "{tmp}/o.csv"],
    "moses_vae_throughput.py": ["--data", "no/such.csv"],
    "pmo.py": ["--model", "no/such/model.pt", "--out", "{tmp}/o", "--tasks", "qed", "--seeds", "0"],
    "posterior_samples.py": ["--model", "no/such/model.pt", "--data", str(MOLECULES_CSV), "--out", "{tmp}/o.csv"],
    "prepare_memory.py": ["no/such.csv"],
    "record_ring_sizes.py": ["--model", "no/such/model.pt", "--data", str(MOLECULES_CSV), "--out", "{tmp}/o.pt"],
    "spread_curve.py": ["--model", "no/such/model.pt", "--out", "{tmp}/o"],
    "surrogate_r2.py": ["--input", "no/such.csv"],
}


def test_every_script_has_a_bad_input_case():
    assert set(BAD_INPUT) == set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_bad_input_is_one_line_without_traceback(script, tmp_path):
    done = run(script, *(a.format(tmp=tmp_path) for a in BAD_INPUT[script]))
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip() and "WARNING" not in line]
    assert len(lines) == 1 and "error" in lines[0] and "no/such" in lines[0], done.stderr


def test_make_lead_data_tiny(tmp_path):
    moses = tmp_path / "train.csv.gz"
    with gzip.open(moses, "wt") as f:
        f.write("SMILES,SPLIT\nCCO,train\nc1ccccc1,train\nCCN,test\n")
    zinc = tmp_path / "zinc.txt"
    zinc.write_text("CC(=O)O\nC[NH3+]\n")
    out = tmp_path / "lead.csv.gz"
    done = run("make_lead_data.py", "--moses", moses, "--zinc", zinc, "--n-moses", 1, "--out", out)
    assert done.returncode == 0, done.stderr
    import pandas as pd

    table = pd.read_csv(out)
    assert len(table) == 3 and table["source"].tolist().count("zinc_valid_24k") == 2
    assert "CCN" not in set(table["smiles"])  # only the MOSES training split


def test_posterior_samples_and_prepare_memory_tiny(trained_run, tmp_path):
    done = run("posterior_samples.py", "--model", trained_run.out_dir / "model.pt", "--data", MOLECULES_CSV,
               "-n", 8, "--out", tmp_path / "post.csv")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "post.csv").exists()
    done = run("prepare_memory.py", MOLECULES_CSV, "--workers", 1, "--out", tmp_path / "mem.json")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "mem.json").exists()


def test_benchmarks_tiny(trained_run, tmp_path):
    bench = tmp_path / "bench.txt"
    bench.write_text("CC(=O)Oc1ccccc1C(=O)O -1.0\nCCOc1ccccc1 1.0\n")
    model = trained_run.out_dir / "model.pt"
    done = run("constrained_benchmark.py", "--model", model, "--data", bench, "--out", tmp_path / "c", "--n", 2,
               "--budget", 6, "--batch-size", 3, "--thresholds", "0.0", "--method", "random", "--device", "cpu")
    assert done.returncode == 0, done.stderr
    # the default method (neighbourhood) in two shards, then merged: every molecule once, calls within budget
    for shard in (0, 1):
        done = run("constrained_benchmark.py", "--model", model, "--data", bench, "--out", tmp_path / f"s{shard}",
                   "--shard", f"{shard}/2", "--budget", 6, "--batch-size", 3, "--thresholds", "0.0,0.4",
                   "--device", "cpu")
        assert done.returncode == 0, done.stderr
    done = run("constrained_benchmark.py", "--merge", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "m")
    assert done.returncode == 0, done.stderr
    import pandas as pd

    leads = pd.read_csv(tmp_path / "m" / "leads_0.4.csv")
    assert leads["seed_index"].tolist() == [1, 2] and (leads["calls"] <= 6).all()
    results = pd.read_csv(tmp_path / "m" / "results.csv")
    assert results["threshold"].tolist() == [0.0, 0.4] and (results["seeds"] == 2).all()
    assert ((results["floor_pass_rate"] >= 0) & (results["floor_pass_rate"] <= 1)).all()
    assert "MolDQN" in (tmp_path / "m" / "results.md").read_text()
    done = run("constrained_benchmark.py", "--merge", tmp_path / "s0", tmp_path / "nothing", "--out", tmp_path / "x")
    assert done.returncode != 0 and "nothing" in done.stderr and "Traceback" not in done.stderr


def test_spread_curve_tiny(trained_run, tmp_path):
    done = run("spread_curve.py", "--model", trained_run.out_dir / "model.pt", "--spreads", "1,2", "-n", 12,
               "--out", tmp_path / "s")
    assert done.returncode == 0, done.stderr
    import pandas as pd

    table = pd.read_csv(tmp_path / "s" / "spread.csv")
    assert table["sampling"].tolist() == ["trained prior", "exemplars", "exemplars"] * 2
    assert table["canonical"].tolist() == [False] * 3 + [True] * 3  # every decode, then canonical decodes only
    assert table["spread"].tolist()[4:] == [1.0, 2.0] and (table["validity"] > 0).all()
    assert (table["draws"][3:] >= 12).all() and table["canonical_rate"].between(0, 1).all()
    assert (tmp_path / "s" / "spread.png").stat().st_size > 0
    done = run("spread_curve.py", "--model", trained_run.out_dir / "model.pt", "--spreads", "0", "--out", tmp_path / "t")
    assert done.returncode == 2 and "spreads" in done.stderr
    # new molecules only: none of the model's training molecules is kept
    done = run("spread_curve.py", "--model", trained_run.out_dir / "model.pt", "--spreads", "0.5", "-n", 12,
               "--modes", "novel", "--no-trained-prior", "--out", tmp_path / "n")
    assert done.returncode == 0, done.stderr
    novel = pd.read_csv(tmp_path / "n" / "spread.csv")
    assert novel["novel_only"].tolist() == [True] and novel["novelty"].tolist() == [1.0]
    done = run("spread_curve.py", "--model", trained_run.out_dir / "model.pt", "--modes", "all", "--out", tmp_path / "t")
    assert done.returncode == 2 and "--modes" in done.stderr


def test_surrogate_r2_tiny(trained_run, tmp_path):
    out = tmp_path / "r2.json"
    done = run("surrogate_r2.py", "--model", trained_run.out_dir / "model.pt", "--input", MOLECULES_CSV, "-n", 40,
               "--properties", "qed,logp", "--ensemble-molecules", 30, "--out", out)
    assert done.returncode == 0, done.stderr
    import json

    figures = json.loads(out.read_text())
    assert figures["molecules"] > 20
    (ensemble,) = figures["results"].values()  # the tiny model has no head: the ensemble only
    assert set(ensemble) == {"qed", "logp"} and all(v["r2"] <= 1.0 and v["mae"] >= 0 for v in ensemble.values())


def test_latent_study_tiny(tmp_path):
    # an arm trained from the study's base recipe and a post-hoc exemplar arm fitted to it, both scored
    import pandas as pd

    moses = tmp_path / "moses"
    moses.mkdir()
    pd.read_csv(MOLECULES_CSV)[["SMILES"]].to_csv(moses / "test.csv.gz", index=False)
    tiny = ["model.embedding_dim=16", "model.encoder_hidden=32", "model.decoder_hidden=64", "model.latent_dim=8",
            "train.epochs=1", "train.batch_size=16", "train.eval_samples=10", "train.eval_reconstruct=4",
            "train.eval_reference=validation", "data.validation_fraction=0.125", f'data.cache_dir="{tmp_path / "c"}"']
    done = run("latent_study.py", "--data", MOLECULES_CSV, "--arms", "baseline", "baseline_exemplars", "--minutes", 1,
               "--prior-steps", 5, "--n-samples", 12, "--n-reconstruct", 6, "--moses", moses, "--out", tmp_path / "s",
               *[arg for override in tiny for arg in ("--set", override)])
    assert done.returncode == 0, done.stderr + done.stdout
    table = pd.read_csv(tmp_path / "s" / "study.csv")
    assert table["arm"].tolist() == ["baseline", "baseline_exemplars"]
    assert (table["validity"] > 0).all() and table["reconstruct_n"].tolist() == [6, 6]
    trained = (tmp_path / "s" / "baseline" / "config.toml").read_text()
    assert 'prior = "gaussian"' in trained and "init = \"\"" in trained  # the study's own recipe, from scratch
    assert (tmp_path / "s" / "study.png").stat().st_size > 0


def test_record_ring_sizes_into_a_checkpoint(trained_run, tmp_path):
    import pandas as pd

    from molvae.checkpoint import load_model
    from molvae.chem import ring_sizes_in

    model = trained_run.out_dir / "model.pt"
    macrocycle = tmp_path / "more.csv"
    macrocycle.write_text("smiles\nC1CCCCCCCCCCC1\n")
    done = run("record_ring_sizes.py", "--model", model, "--data", macrocycle, "--out", tmp_path / "m.pt",
               "--workers", "1")
    assert done.returncode == 0, done.stderr
    recorded = load_model(tmp_path / "m.pt").ring_sizes
    assert recorded == load_model(model).ring_sizes | {12}  # the sizes it had, and the new file's
    assert load_model(model).ring_sizes == set(ring_sizes_in(pd.read_csv(MOLECULES_CSV)["SMILES"].tolist(), 1))
    missing = run("record_ring_sizes.py", "--model", model, "--data", "no/such.csv", "--out", tmp_path / "n.pt")
    assert missing.returncode != 0 and "Traceback" not in missing.stderr and "no/such.csv" in missing.stderr


def test_pmo_runner_tiny(trained_run, tmp_path):
    """Two shards side by side, then merged: every task x method x seed once, PMO's accounting (calls are
    unique molecules, at most the budget; the AUC from the calls in order), a table with a sum row, a plot."""
    import pandas as pd

    from molvae.optimize import top_k_auc

    model = trained_run.out_dir / "model.pt"
    common = ["--model", model, "--tasks", "qed,pmo:celecoxib_rediscovery", "--methods", "random", "--seeds", "0,1",
              "--budget", 8, "--batch-size", 4, "--device", "cpu", "--threads", 1, "--spread", 1.5,
              "--set", "decodes_per_point=2"]
    for shard in (0, 1):
        done = run("pmo.py", *common, "--out", tmp_path / f"s{shard}", "--shard", f"{shard}/2")
        assert done.returncode == 0, done.stderr
    settings = json.loads((tmp_path / "s0" / "run.json").read_text())["settings"]
    assert settings["prior_spread"] == 1.5 and settings["decodes_per_point"] == 2 and settings["budget"] == 8
    runs0 = pd.read_csv(tmp_path / "s0" / "runs.csv")
    assert list(zip(runs0["task"], runs0["seed"])) == [("qed", 0), ("celecoxib_rediscovery", 0)]
    again = run("pmo.py", *common, "--out", tmp_path / "s0", "--shard", "0/2")  # resumes: nothing left to run
    assert again.returncode == 0 and len(pd.read_csv(tmp_path / "s0" / "runs.csv")) == 2
    candidates = pd.read_csv(tmp_path / "s0" / "candidates" / "qed_random_seed0.csv.gz").sort_values("call")
    assert candidates["smiles"].is_unique and len(candidates) <= 8
    assert runs0.loc[0, "calls"] == len(candidates)
    assert runs0.loc[0, "auc_top10"] == pytest.approx(top_k_auc(candidates["score"].tolist(), 10, 8, 100))

    done = run("pmo.py", "--compare", f"a={tmp_path / 's0'}", f"b={tmp_path / 's1'}", "--out", tmp_path / "c")
    assert done.returncode == 0, done.stderr  # the shards as two study arms: seed 0 against seed 1
    compared = pd.read_csv(tmp_path / "c" / "compare.csv")
    assert sorted(zip(compared["arm"], compared["task"])) == [("a", "celecoxib_rediscovery"), ("a", "qed"),
                                                             ("b", "celecoxib_rediscovery"), ("b", "qed")]
    assert compared.loc[compared["arm"] == "a", "auc_top10"].sum() == pytest.approx(runs0["auc_top10"].sum())
    assert f"| **{runs0['auc_top10'].sum():.3f}** |" in done.stdout and (tmp_path / "c" / "compare.png").stat().st_size
    done = run("pmo.py", "--compare", f"both={tmp_path / 's0'},{tmp_path / 's1'}", "--out", tmp_path / "c")
    assert done.returncode == 0, done.stderr  # one arm run in two folders: both seeds of each task
    assert set(pd.read_csv(tmp_path / "c" / "compare.csv")["seeds"]) == {"0/1"}
    both = run("pmo.py", "--model", model, "--tasks", "qed", "--methods", "neighbourhood,random", "--seeds", "0",
               "--budget", 8, "--device", "cpu", "--threads", 1, "--out", tmp_path / "both")
    assert both.returncode == 0, both.stderr  # the population search keeps its preset beside random sampling
    meta = json.loads((tmp_path / "both" / "run.json").read_text())
    assert meta["settings_per_method"]["neighbourhood"]["finetune_every"] == 5 and meta["settings"]["budget"] == 8
    assert list(pd.read_csv(tmp_path / "both" / "runs.csv")["method"]) == ["neighbourhood", "random"]
    for arms in ([tmp_path / "s0"], [f"a={tmp_path / 's0'},{tmp_path / 's0'}"]):
        done = run("pmo.py", "--compare", *arms, "--out", tmp_path / "c")
        assert done.returncode == 2 and ("LABEL=DIR" in done.stderr or "two folders" in done.stderr)
        assert "Traceback" not in done.stderr

    peers = tmp_path / "peers.csv"  # a published method that beats us on qed only, and one task we did not run
    peers.write_text("task,method,auc_top10\nqed,Peer,1.0\nceleCoxib,Peer,0.0\ncelecoxib_rediscovery,Peer,0.0\n")
    done = run("pmo.py", "--merge", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "m", "--peers", peers,
               "--top-molecules", "qed")
    assert done.returncode == 0, done.stderr
    results = pd.read_csv(tmp_path / "m" / "results.csv")
    assert results["task"].tolist() == ["qed", "celecoxib_rediscovery"] and (results["seeds"] == 2).all()
    assert results["auc_top10"].between(0, 1).all() and (results["calls"] <= 8).all()
    table = (tmp_path / "m" / "results.md").read_text()
    assert "**sum**" in table and "| qed |" in done.stdout and "| task | random | Peer |" in table
    assert "1.000 (2 tasks) |" in table and "random below Peer on 1 of 2 tasks: qed" in table
    assert (tmp_path / "m" / "top_molecules.png").stat().st_size > 0
    peers.write_text("task,score\nqed,1.0\n")
    done = run("pmo.py", "--merge", tmp_path / "s0", tmp_path / "s1", "--out", tmp_path / "m", "--peers", peers)
    assert done.returncode == 2 and "auc_top10" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "m" / "curves.png").stat().st_size > 0
    curves = pd.read_csv(tmp_path / "m" / "curves.csv")
    assert set(curves["calls"]) == {8} and len(curves) == 4

    done = run("pmo.py", "--merge", tmp_path / "s0", tmp_path / "s0", "--out", tmp_path / "x")
    assert done.returncode == 2 and "two of the folders" in done.stderr and "Traceback" not in done.stderr
    for bad, message in ((["--tasks", "drd2"], "classifiers"), (["--methods", "gradient"], "outside PMO's budget"),
                         (["--shard", "2/2"], "--shard"), (["--spread", "-1"], "prior_spread")):
        done = run("pmo.py", *common, "--out", tmp_path / "bad", *bad)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_custom_objective_tiny(trained_run, tmp_path):
    """The untuned custom scorer, the default search beside random sampling: one row per method and seed,
    each within the budget, and the table printed. The scorer is RDKit descriptors of one molecule, so
    imatinib's value is exact up to the printed rounding."""
    import importlib.util

    import pandas as pd

    spec = importlib.util.spec_from_file_location("custom_objective", SCRIPT_PATHS["custom_objective.py"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from rdkit import Chem

    assert module.imatinib_like(Chem.MolFromSmiles(module.IMATINIB)) == pytest.approx(0.756, abs=5e-4)

    done = run("custom_objective.py", "--model", trained_run.out_dir / "model.pt", "--out", tmp_path / "o",
               "--methods", "neighbourhood,random", "--seeds", "0,1", "--budget", 12, "--threads", 1,
               "--set", "max_stale_rounds=3")
    assert done.returncode == 0, done.stderr
    runs = pd.read_csv(tmp_path / "o" / "runs.csv")
    assert sorted(zip(runs["method"], runs["seed"])) == [("neighbourhood", 0), ("neighbourhood", 1),
                                                         ("random", 0), ("random", 1)]
    assert ((runs["oracle_calls"] > 0) & (runs["oracle_calls"] <= 12)).all()
    assert "| neighbourhood |" in done.stdout and "| random |" in done.stdout
