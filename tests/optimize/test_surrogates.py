"""Property surrogates on z (molvae.optimize.surrogates): the differentiable score, the fitted
ensemble and the model's own head."""

from __future__ import annotations

import pytest
import torch

from molvae.objectives import combined_score, parse_objectives
from molvae.optimize import EnsembleSurrogate, HeadSurrogate, build_surrogate, fit_ensemble, surrogate_score

from .conftest import FAST


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
