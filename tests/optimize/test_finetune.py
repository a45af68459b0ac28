"""Weighted retraining during the population search (molvae.optimize.finetune)."""

from __future__ import annotations

import pytest
import torch

from molvae.model import vae_loss
from molvae.objectives import parse_objectives
from molvae.optimize import optimize_config_from_dict, run_method
from molvae.optimize.finetune import rank_weights
from molvae.optimize.oracle import padded_tokens

from .conftest import FAST


def test_rank_weights_favour_the_best_and_sum_to_one():
    weights = rank_weights([0.2, 0.9, 0.5, 0.1])
    assert float(weights.sum()) == pytest.approx(1.0)
    assert weights.argsort(descending=True).tolist() == [1, 2, 0, 3]
    assert float(weights[1] / weights[3]) > 100  # k N = 0.004: the best is drawn hundreds of times as often


def test_finetuning_fits_a_copy_to_the_best_molecules(loaded, evaluations):
    """The caller's model is untouched, and the search's copy writes the three best molecules found
    (that it can read) likelier than the original does."""
    before = {name: value.clone() for name, value in loaded.model.state_dict().items()}
    config = optimize_config_from_dict({"budget": 60, "batch_size": 8, "lead_radius": 0.5, "finetune_every": 2,
                                        "finetune_steps": 20}, FAST)
    result = run_method(loaded, parse_objectives("qed:max"), "neighbourhood", config)
    assert all(torch.equal(value, before[name]) for name, value in loaded.model.state_dict().items())
    oracle = evaluations[-1].oracle
    tuned = oracle.model
    assert tuned is not loaded.model and len(evaluations) > 2

    scored = sorted((c for c in result.candidates if c.score is not None), key=lambda c: -c.score)
    readable = oracle.symbols([c.smiles for c in scored])  # the model may not read every molecule it wrote
    best = [readable[c.smiles] for c in scored if c.smiles in readable][:3]
    tokens, lengths = padded_tokens(best, oracle.device)
    with torch.no_grad():
        nll = [float(vae_loss(model(tokens, lengths, sample_z=False), tokens, 0.0).reconstruction.mean())
               for model in (loaded.model, tuned)]
    assert nll[1] < nll[0]  # teacher-forced negative log-likelihood at the encoder mean


def test_finetuning_is_seeded_by_the_run_alone(loaded):
    """A run with weighted retraining gives the same molecules whatever ran before it in the process
    (the fine-tuning's posterior samples come from the run's own generator, not torch's global one)."""
    config = optimize_config_from_dict({"budget": 30, "batch_size": 8, "finetune_every": 1, "finetune_steps": 2}, FAST)
    runs = []
    for global_seed in (1, 2):
        torch.manual_seed(global_seed)
        runs.append([c.smiles for c in run_method(loaded, parse_objectives("qed:max"), "neighbourhood",
                                                  config).candidates])
    assert runs[0] == runs[1] and len(runs[0]) > 8
