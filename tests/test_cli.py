"""The command line, exercised in-process on a tiny model."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch

from molvae.cli import build_parser, main

from .conftest import CAFFEINE, HOSTILE_CSV, MOLECULES_CSV, tiny_config


def tiny_flags(tmp_path) -> list[str]:
    config = tiny_config(tmp_path)
    flags = []
    for section, values in config.to_dict().items():
        for key, value in values.items():
            if isinstance(value, str):
                value = json.dumps(value)
            elif isinstance(value, bool):
                value = str(value).lower()
            elif isinstance(value, list):
                value = json.dumps(value)
            flags += ["--set", f"{section}.{key}={value}"]
    return flags


@pytest.mark.parametrize("command", ["train", "sample", "evaluate", "encode", "reconstruct", "score",
                                     "interpolate", "around", "map", "bench", "fetch-moses", "merge"])
def test_every_command_explains_itself(command, capsys):
    assert main([command, "--help"]) == 0
    text = capsys.readouterr().out
    assert f"usage: molvae {command}" in text and len(text) > 200


def test_top_level_help_lists_commands(capsys):
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for command in ("train", "sample", "evaluate", "score", "interpolate"):
        assert command in text


def test_python_dash_m_molvae_runs_the_cli():
    result = subprocess.run([sys.executable, "-m", "molvae", "evaluate", "--help"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "usage: molvae evaluate" in result.stdout


def test_train_then_every_inference_command(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--data", str(MOLECULES_CSV), "--out", str(out), *tiny_flags(tmp_path)]) == 0
    printed = capsys.readouterr().out
    assert "prior samples from the best model" in printed and "validity" in printed
    for name in ("model.pt", "last.pt", "samples.csv", "samples.sdf", "samples.png", "loss_curves.png",
                 "history.csv", "rejected.csv", "config.toml", "metrics.json", "vocab.json"):
        assert (out / name).exists(), name
    model = str(out / "model.pt")

    # resume: one more epoch from last.pt
    assert main(["train", "--data", str(MOLECULES_CSV), "--out", str(out), "--resume", *tiny_flags(tmp_path),
                 "--set", "train.epochs=3"]) == 0
    assert len(pd.read_csv(out / "history.csv")) == 3

    samples = tmp_path / "samples.csv"
    assert main(["sample", "--model", model, "-n", "25", "--out", str(samples), "--device", "cpu",
                 "--temperature", "0.8", "--top-k", "5"]) == 0
    table = pd.read_csv(samples)
    assert len(table) == 25 and {"smiles", "valid", "novel", "qed", "logp", "sa", "mw", "tpsa"} <= set(table)
    assert samples.with_suffix(".sdf").exists() and samples.with_suffix(".png").exists()

    metrics_json = tmp_path / "metrics.json"
    assert main(["evaluate", str(samples), "--train", str(MOLECULES_CSV), "--out", str(metrics_json)]) == 0
    assert {"validity", "uniqueness", "novelty", "int_div"} <= set(json.loads(metrics_json.read_text()))

    latents = tmp_path / "latents.csv"
    assert main(["encode", "--model", model, "--input", str(HOSTILE_CSV), "--out", str(latents)]) == 0
    encoded = pd.read_csv(latents)
    rejected = pd.read_csv(tmp_path / "latents_rejected.csv")
    assert len(encoded) + len(rejected) == 24  # every input row accounted for
    assert {"z0", "z7"} <= set(encoded)

    scores = tmp_path / "scores.csv"
    assert main(["score", "--model", model, "--input", str(MOLECULES_CSV), "--out", str(scores)]) == 0
    scored = pd.read_csv(scores)
    assert scored["neg_elbo"].is_monotonic_decreasing
    assert scored["neg_elbo"].to_numpy() == pytest.approx((scored["reconstruction_nll"] + scored["kl"]).to_numpy())

    recon = tmp_path / "recon.csv"
    assert main(["reconstruct", "--model", model, "--input", str(MOLECULES_CSV), "--out", str(recon)]) == 0
    assert "exact" in pd.read_csv(recon)

    strip = tmp_path / "strip.png"
    assert main(["interpolate", "--model", model, "--start", "CCOc1ccccc1", "--end", "CC(=O)Nc1ccccc1",
                 "--steps", "5", "--out", str(strip)]) == 0
    assert strip.stat().st_size > 1000

    around = tmp_path / "around.csv"
    assert main(["around", "--model", model, "--smiles", "CCOc1ccccc1", "-n", "6", "--out", str(around)]) == 0
    assert len(pd.read_csv(around)) == 6

    latent_map = tmp_path / "map.png"
    assert main(["map", "--model", model, "--data", str(MOLECULES_CSV), "--property", "qed",
                 "--out", str(latent_map)]) == 0
    assert latent_map.exists() and len(pd.read_csv(latent_map.with_suffix(".csv"))) == 64


def test_user_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "absent.csv"), "--out", str(tmp_path / "r"), "--no-track"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["train", "--data", str(MOLECULES_CSV), "--out", str(tmp_path / "r"), "--set", "train.epoch=1"]) == 2
    assert "unknown key 'epoch' in [train]" in capsys.readouterr().err
    assert main(["train", "--data", str(HOSTILE_CSV), "--out", str(tmp_path / "r"), "--no-track"]) == 2
    assert "max_reject_fraction" in capsys.readouterr().err
    assert main(["sample", "--model", str(tmp_path / "none.pt"), "--out", str(tmp_path / "s.csv")]) == 2
    assert "no such checkpoint" in capsys.readouterr().err


def test_interpolate_rejects_unencodable_molecule(trained_run, tmp_path, capsys):
    model = str(trained_run.out_dir / "model.pt")
    code = main(["interpolate", "--model", model, "--start", "C1CC", "--end", CAFFEINE, "--out", str(tmp_path / "x.png")])
    assert code == 2 and "cannot encode 'C1CC': unparsable" in capsys.readouterr().err


def test_parser_defaults():
    args = build_parser().parse_args(["sample", "--model", "m.pt", "--out", "s.csv"])
    assert args.n == 1000 and args.temperature == 1.0 and args.device == "auto"


def test_bench_prints_side_by_side_ratio(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--data", str(MOLECULES_CSV), "--steps", "2", "--n-sample", "20", "--batch-size", "16",
                 "--threads", "1", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "training (molecules/s)" in printed and "sampling" in printed and "x  " in printed
    rows = json.loads(out.read_text())
    assert {r["name"] for r in rows} >= {"training (molecules/s)"}
    assert all(r["molvae"] > 0 for r in rows)
    assert all(r["reference"] > 0 and r["ratio"] > 0 for r in rows if r["reference"] is not None)
    assert rows[0]["rnn_kernels"] == "aten::gru (cuDNN applies on CUDA only)"  # the profiler saw the GRU op


@pytest.mark.slow
def test_fetch_moses_downloads_the_sets(tmp_path):
    assert main(["fetch-moses", "--dest", str(tmp_path)]) == 0
    assert (tmp_path / "train.csv.gz").stat().st_size > 5_000_000


def test_sharded_sampling_and_merge(trained_run, tmp_path, capsys):
    model = str(trained_run.out_dir / "model.pt")
    for shard in ("0/2", "1/2"):
        assert main(["sample", "--model", model, "-n", "21", "--out", str(tmp_path / "big.csv"), "--shard", shard,
                     "--device", "cpu"]) == 0
    parts = sorted(tmp_path.glob("big.shard*-of-0002.csv"))
    tables = [pd.read_csv(p) for p in parts]
    assert [len(t) for t in tables] == [11, 10]  # 21 split over two shards
    assert main(["merge", *map(str, parts), "--out", str(tmp_path / "all.csv")]) == 0
    merged = pd.read_csv(tmp_path / "all.csv")
    assert merged["smiles"].is_unique and merged["valid"].all()
    assert "duplicates removed" in capsys.readouterr().out
    assert main(["sample", "--model", model, "--out", str(tmp_path / "x.csv"), "--shard", "2/2"]) == 2


def test_pretrained_model_ships_loads_and_samples(tmp_path, capsys):
    from molvae.checkpoint import PRETRAINED, PRETRAINED_LEAD, load_model
    from molvae.sample import sample_prior

    for shipped in (PRETRAINED, PRETRAINED_LEAD):
        assert shipped.exists() and shipped.stat().st_size < 25 * 2**20
    loaded = load_model(PRETRAINED)
    smiles = sample_prior(loaded, 50, seed=0, progress=False).smiles
    assert sum(s is not None for s in smiles) >= 45
    out = tmp_path / "default.csv"
    assert main(["sample", "-n", "10", "--out", str(out), "--device", "cpu"]) == 0  # no --model: the pretrained one
    assert len(pd.read_csv(out)) == 10
    capsys.readouterr()
    novel = tmp_path / "novel.csv"  # at spread 1 many decodes are training molecules: --novel leaves them out
    assert main(["sample", "-n", "30", "--spread", "1", "--novel", "--out", str(novel), "--device", "cpu"]) == 0
    table = pd.read_csv(novel)
    assert len(table) == 30 and table["novel"].all()
    assert "known_left_out" in capsys.readouterr().out


def test_commands_that_read_molecules_default_to_the_lead_model(tmp_path, capsys):
    from molvae.checkpoint import PRETRAINED, PRETRAINED_LEAD, load_model
    from molvae.experiment import _initial_model

    out = tmp_path / "recon.csv"
    assert main(["reconstruct", "--input", str(MOLECULES_CSV), "--beam", "1", "--out", str(out),
                 "--device", "cpu"]) == 0
    assert f"shipped lead model {PRETRAINED_LEAD}" in capsys.readouterr().err
    assert pd.read_csv(out)["exact"].mean() > 0.5
    assert main(["sample", "-n", "5", "--out", str(tmp_path / "s.csv"), "--device", "cpu"]) == 0
    assert f"shipped sampling model {PRETRAINED}" in capsys.readouterr().err
    # fine-tuning can start from either
    lead = load_model(PRETRAINED_LEAD)
    model, vocab, _, (hashes, ring_sizes) = _initial_model(tiny_config(tmp_path, 'train.init="pretrained-lead"'))
    assert vocab.tokens == lead.vocab.tokens and len(hashes) > 0 and ring_sizes == lead.ring_sizes
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), lead.model.state_dict().values()))


def test_evaluate_with_the_moses_metric_set(tmp_path, capsys, monkeypatch):
    import gzip

    import molvae.moses

    monkeypatch.chdir(tmp_path)  # the result cache goes to ./.cache/molvae

    smiles = pd.read_csv(MOLECULES_CSV)["SMILES"].tolist()
    for split, part in (("train", smiles[:32]), ("test", smiles[32:48]), ("test_scaffolds", smiles[48:])):
        (tmp_path / f"{split}.csv.gz").write_bytes(gzip.compress(("SMILES\n" + "\n".join(part) + "\n").encode()))
    samples = tmp_path / "samples.csv"
    samples.write_text("smiles\n" + "\n".join(smiles[:20] + ["C1CC", "CCO"]) + "\n")
    out = tmp_path / "moses.json"
    assert main(["evaluate", str(samples), "--moses", str(tmp_path), "--out", str(out)]) == 0
    metrics = json.loads(out.read_text())
    assert metrics["valid"] == pytest.approx(21 / 22)
    assert metrics["Novelty"] == pytest.approx(1 / 21)  # only ethanol is outside the 32 training molecules
    for key in ("FCD/Test", "SNN/Test", "Frag/Test", "Scaf/Test", "FCD/TestSF", "IntDiv", "IntDiv2", "Filters",
                "logP", "SA", "QED", "weight"):
        assert key in metrics, key
    # the same files again: the table comes from the cache, nothing is recomputed
    monkeypatch.setattr(molvae.moses, "moses_metrics", lambda *a, **k: pytest.fail("recomputed"))
    again = tmp_path / "again.json"
    assert main(["evaluate", str(samples), "--moses", str(tmp_path), "--out", str(again)]) == 0
    assert json.loads(again.read_text()) == metrics


def test_sampling_never_opens_the_training_file_of_a_self_contained_checkpoint(trained_run, tmp_path, monkeypatch,
                                                                               capsys):
    """The checkpoint carries its training set's hashes: novelty without reading or cleaning any file."""
    import molvae.data
    import molvae.trainset
    from molvae.checkpoint import load_model

    loaded = load_model(trained_run.out_dir / "model.pt")
    assert len(loaded.training_index) == trained_run.data_counts["rows_kept"]
    assert 0 < len(loaded.training_sample) <= trained_run.data_counts["rows_kept"]

    def forbidden(*args, **kwargs):
        raise AssertionError("the training file was read")

    monkeypatch.setattr(molvae.data, "prepare", forbidden)
    monkeypatch.setattr(molvae.data, "read_smiles_table", forbidden)
    monkeypatch.setattr(molvae.trainset, "read_training_smiles", forbidden)
    out = tmp_path / "s.csv"
    assert main(["sample", "--model", str(trained_run.out_dir / "model.pt"), "-n", "20", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table.loc[table["valid"], "novel"].notna().all() and table["valid"].any()
    # a training molecule is recognised as not novel through the hashes alone
    from molvae.metrics import novelty

    assert novelty([loaded.training_sample[0]], loaded.training_index) == 0.0


def test_reconstruct_counts_a_failed_decode_as_not_exact(trained_run, tmp_path, capsys, monkeypatch):
    import molvae.sample

    real = molvae.sample.decode_latents

    def first_fails(*args, **kwargs):  # the first molecule decodes to nothing valid
        return [None, *real(*args, **kwargs)[1:]]

    monkeypatch.setattr(molvae.sample, "decode_latents", first_fails)
    out = tmp_path / "recon.csv"
    assert main(["reconstruct", "--model", str(trained_run.out_dir / "model.pt"), "--input", str(MOLECULES_CSV),
                 "--out", str(out), "--beam", "1"]) == 0
    table = pd.read_csv(out)
    assert not table["exact"].iloc[0] and table["tanimoto"].iloc[0] == 0.0
    assert table["tanimoto"].between(0.0, 1.0).all()
    assert "mean Tanimoto of decode to input" in capsys.readouterr().out


def test_reconstruct_and_encode_refine_the_encodings_on_request(trained_run, tmp_path, capsys):
    model = str(trained_run.out_dir / "model.pt")
    plain, refined = tmp_path / "plain.csv", tmp_path / "refined.csv"
    assert main(["encode", "--model", model, "--input", str(MOLECULES_CSV), "--out", str(plain)]) == 0  # default 0
    assert main(["encode", "--model", model, "--input", str(MOLECULES_CSV), "--out", str(refined),
                 "--refine", "5"]) == 0
    latent = [pd.read_csv(path).filter(regex=r"^z\d+$").to_numpy() for path in (plain, refined)]
    assert latent[0].shape == latent[1].shape and not (latent[0] == latent[1]).all()
    capsys.readouterr()
    assert main(["reconstruct", "--model", model, "--input", str(MOLECULES_CSV), "--out", str(plain),
                 "--refine", "-1"]) == 2
    assert "argument --refine: must be a whole number >= 0" in capsys.readouterr().err


def test_evaluate_scores_every_molecule_of_a_file_on_an_objective(tmp_path, capsys):
    import pandas as pd

    data = tmp_path / "mols.csv"
    data.write_text("smiles,id\nCCO,1\nnot a molecule,2\n,3\nCC(=O)Oc1ccccc1C(=O)O,4\n")
    out = tmp_path / "scored.csv"
    assert main(["evaluate", str(data), "--objective", "pmo:celecoxib_rediscovery", "--out", str(out)]) == 0
    table = pd.read_csv(out)
    assert table["row"].tolist() == [1, 2, 3, 4] and table["score"].notna().tolist() == [True, False, False, True]
    assert table["reason"].isna().tolist() == [True, False, False, True]  # a reason exactly where there is no score
    assert main(["evaluate", str(data), "--objective", "qed:max"]) == 2
    assert "give --out" in capsys.readouterr().err
