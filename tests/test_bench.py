"""molvae bench: the training-step profile against the machine's matmul peak."""

from __future__ import annotations

import json

import pandas as pd
import torch

from molvae.bench import matmul_peak, profile_training_step
from molvae.checkpoint import load_model
from molvae.cli import main
from molvae.data import tokenize
from molvae.model import MolVAE
from molvae.sample import encode_smiles

from .conftest import MOLECULES_CSV


def test_the_profile_splits_a_step_into_its_parts(trained_run):
    loaded = load_model(trained_run.out_dir / "model.pt")
    encoded = encode_smiles(loaded, pd.read_csv(MOLECULES_CSV)["SMILES"].tolist())
    data = tokenize(encoded.selfies, encoded.smiles, loaded.vocab)
    rows = profile_training_step(MolVAE(loaded.model.config), data, 16, loaded.device, repeats=1)
    parts = {row["part"]: row for row in rows}
    assert list(parts)[-1] == "whole training step" and parts["whole training step"]["share"] == 1.0
    assert {"encoder (forward + backward)", "decoder recurrence (forward + backward)", "optimizer step"} <= set(parts)
    recurrence, whole = parts["decoder recurrence (forward + backward)"], parts["whole training step"]
    assert 0 < recurrence["gflop"] < whole["gflop"]  # the recurrence is part of the step's arithmetic
    assert all(row["ms"] >= 0 for row in rows) and whole["molecules"] == 16


def test_matmul_peak_and_the_profile_command(trained_run, tmp_path, capsys):
    assert matmul_peak(torch.device("cpu"), size=128, seconds=0.05) > 0.1  # GFLOP/s
    out = tmp_path / "profile.json"
    assert main(["bench", "--profile", "--model", str(trained_run.out_dir / "model.pt"), "--data", str(MOLECULES_CSV),
                 "--batch-size", "16", "--device", "cpu", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "matmul peak" in printed and "of the matmul peak" in printed
    report = json.loads(out.read_text())
    assert report["peak_gflops"] > 0 and report["parts"][-1]["part"] == "whole training step"
    assert report["precision"] in ("float32", "bfloat16")  # auto: what this CPU has units for


def test_the_benchmark_reports_its_precision_and_share_of_the_peak(trained_run, tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert main(["bench", "--model", str(trained_run.out_dir / "model.pt"), "--data", str(MOLECULES_CSV),
                 "--batch-size", "8", "--steps", "2", "--n-sample", "20", "--no-reference", "--device", "cpu",
                 "--precision", "fp32", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "precision=float32" in printed and "of the float32 matmul peak" in printed
    training = next(row for row in json.loads(out.read_text()) if row["name"].startswith("training"))
    assert float(training["training_gflops_per_s"]) > 0 and float(training["matmul_peak_gflops"]) > 0
