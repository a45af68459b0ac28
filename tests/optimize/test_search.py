"""Where the searches start (molvae.optimize.search): prior draws and starts around a seed."""

from __future__ import annotations

import pytest
import torch

from molvae.optimize import OptimizeConfig


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
