"""Shared pieces of the optimization tests: a few molecules, a fast configuration, a record of the
oracle's rounds, the session's tiny model (and one with a property head), a fitted QED ensemble, and
a scripted decoder."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from molvae.checkpoint import load_model
from molvae.objectives import parse_objectives
from molvae.optimize import OptimizeConfig, Oracle, build_surrogate
from molvae.optimize.oracle import PointOutcome

from ..conftest import MOLECULES_CSV, tiny_config

BENZENE = "c1ccccc1"
PHENOL = "Oc1ccccc1"
TOLUENE = "Cc1ccccc1"
CATECHOL = "Oc1ccccc1O"
SELENIUM = "C[Se]C"  # Se is not in the fixture's vocabulary: cannot be encoded

# Small budgets and batches: every optimizer finishes in about a second on the tiny model.
FAST = OptimizeConfig(budget=12, batch_size=4, bo_initial=4, bo_raw_samples=16, bo_restarts=2, bo_fit_iterations=10,
                      bo_acquisition_iterations=5, steps_per_round=2, surrogate_molecules=64, surrogate_epochs=20,
                      surrogate_hidden=16, max_rounds=30, max_stale_rounds=4)


@dataclass(frozen=True)
class Evaluation:
    """One round an optimizer asked the oracle to decode and score: its points and what came of them."""

    oracle: Oracle
    step: int
    z: torch.Tensor  # (N, Z)
    templates: list[list[int]] | None  # rewrite templates, one per point (None: plain decodes)
    decodes_per_point: int
    outcomes: list[PointOutcome]  # one per point


@pytest.fixture
def evaluations(monkeypatch) -> list[Evaluation]:
    """Every ``Oracle.evaluate`` call of the test, in order (the calls still run)."""
    calls = []
    evaluate = Oracle.evaluate

    def spy(self, z, step, proposer_score=None, templates=None):
        per_point = self.decodes_per_point
        outcomes = evaluate(self, z, step, proposer_score, templates)
        calls.append(Evaluation(self, step, z.clone(), templates, per_point, outcomes))
        return outcomes

    monkeypatch.setattr(Oracle, "evaluate", spy)
    return calls


# The fixtures are built once for the whole folder, as they were once for the one module it replaces.


@pytest.fixture(scope="package")
def loaded(trained_run):
    """The session's tiny model (no property head)."""
    return load_model(trained_run.files["checkpoint"])


@pytest.fixture(scope="package")
def head_model(tmp_path_factory):
    """A tiny model with a joint property head for QED and logP."""
    from molvae.experiment import train_run

    out = tmp_path_factory.mktemp("head")
    config = tiny_config(out, 'model.property_names=["qed","logp"]', "sample.n=0")
    summary = train_run(MOLECULES_CSV, config, out / "model")
    return load_model(summary.files["checkpoint"])


@pytest.fixture(scope="package")
def training_smiles():
    return pd.read_csv(MOLECULES_CSV)["SMILES"].tolist()


@pytest.fixture(scope="package")
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
