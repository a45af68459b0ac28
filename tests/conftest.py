"""Shared fixtures: small molecule sets, a tiny run configuration and a tiny trained model."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch is imported; see molvae.cli.main

import pytest
import torch

from molvae.config import RunConfig, load_config

FIXTURES = Path(__file__).parent / "fixtures"
MOLECULES_CSV = FIXTURES / "molecules.csv"  # 64 MOSES molecules with an id and a pIC50-like column
HOSTILE_CSV = FIXTURES / "hostile.csv"  # every kind of bad row we promise to survive

# Tiny models run fastest on one thread, and two OpenMP threads on a busy 2-core machine can be
# a hundred times slower than one: the suite pins torch to a single thread.
torch.set_num_threads(1)

ASPIRIN = "CC(=O)Oc1ccccc1C(=O)O"
CAFFEINE = "Cn1c(=O)c2c(ncn2C)n(C)c1=O"
ETHANOL = "CCO"
INVALID = "C1CC"  # unclosed ring


def tiny_config(tmp_path: Path, *overrides: str) -> RunConfig:
    """A model small enough to train in seconds on one CPU core; tracking off unless overridden."""
    return load_config(None, [
        "model.embedding_dim=16", "model.encoder_hidden=32", "model.decoder_hidden=64", "model.decoder_layers=1",
        "model.latent_dim=8", "model.dropout=0.0",
        "train.epochs=2", "train.batch_size=16", "train.eval_samples=20", "train.eval_reconstruct=8",
        "train.warmup_steps=1", "train.device=cpu",
        "data.validation_fraction=0.125", "data.workers=1", f'data.cache_dir="{tmp_path / "cache"}"',
        "sample.n=30", "sample.grid_size=6",
        "tracking.enabled=false",
        *overrides,
    ])


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny model trained once per test session on the 64-molecule fixture."""
    from molvae.experiment import train_run

    out = tmp_path_factory.mktemp("run")
    config = tiny_config(out, "train.epochs=3")
    summary = train_run(MOLECULES_CSV, config, out / "model")
    return summary

