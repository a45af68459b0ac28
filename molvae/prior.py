"""Fit a model's sampling prior to its aggregate posterior after training.

A VAE trained with a light KL weight encodes molecules in a region of latent space that N(0, I)
(or a prior learned alongside a still-moving encoder) covers only loosely; prior draws then land in
"holes" that decode to odd molecules. :func:`fit_prior` draws z ~ q(z|x) for many training molecules
and fits a RealNVP :class:`~molvae.model.FlowPrior` to them by maximum likelihood, with the encoder and
decoder frozen; sampling then draws from where molecules actually are. The result is an ordinary
checkpoint whose ``model.prior`` is ``flow``. :func:`fit_exemplar_prior` instead stores the posteriors
of training molecules themselves (:class:`~molvae.model.ExemplarPrior`), what ``molvae train`` does
at the end of every run; this gives existing checkpoints the same.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from molvae.checkpoint import LoadedModel
from molvae.model import FlowPrior, ModelConfig, MolVAE
from molvae.sample import encode_smiles

__all__ = ["fit_exemplar_prior", "fit_prior"]

log = logging.getLogger(__name__)


def fit_prior(loaded: LoadedModel, smiles: Sequence[str], *, steps: int = 3000, batch_size: int = 1024,
              learning_rate: float = 1e-3, layers: int = 8, hidden: int = 256, validation_fraction: float = 0.05, seed: int = 0) -> tuple[MolVAE, dict[str, float]]:
    """A copy of ``loaded.model`` whose prior is a flow fitted to draws of q(z|x) of the molecules
    ``smiles`` (fresh draws every step; a flow the model already has is refined, otherwise a new one
    of ``layers`` couplings of width ``hidden`` is made).

    Returns the model and figures: mean log-likelihood of held-out posterior draws under the old
    prior and under the fitted one (nats per molecule; higher is better).
    """
    generator = torch.Generator().manual_seed(seed)
    encoded = encode_smiles(loaded, smiles)
    if len(encoded.smiles) < 20:
        raise ValueError(f"need at least 20 encodable molecules to fit a prior, got {len(encoded.smiles)}")
    mu, sigma = encoded.mu, torch.exp(0.5 * encoded.logvar)  # (N, Z) each
    order = torch.randperm(len(mu), generator=generator)
    n_valid = max(10, int(len(mu) * validation_fraction))
    valid, train = order[:n_valid], order[n_valid:]
    draws = 32  # posterior draws per held-out molecule: the figures below are means, not one noisy draw each
    held_mu, held_sigma = mu[valid].repeat_interleave(draws, dim=0), sigma[valid].repeat_interleave(draws, dim=0)
    held_out = held_mu + held_sigma * torch.randn(held_mu.shape, generator=generator)  # (V * draws, Z)

    model = MolVAE(loaded.model.config)
    model.load_state_dict(loaded.model.state_dict())
    model.eval().cpu()
    with torch.no_grad():
        before = model.prior_log_prob(held_out).mean().item()
    if model.prior is None or not isinstance(model.prior, FlowPrior):
        config = dataclasses.replace(model.config, prior="flow", prior_layers=layers, prior_hidden=hidden)
        refitted = MolVAE(config)
        refitted.load_state_dict(model.state_dict(), strict=False)  # every weight but the new prior's
        model = refitted.eval()
    flow = model.prior
    flow.train()
    model.requires_grad_(False)
    flow.requires_grad_(True)
    optimizer = torch.optim.Adam(flow.parameters(), lr=learning_rate)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * step / steps)))
    for _ in tqdm(range(steps), desc="fitting the prior", unit="step", leave=False, disable=None):
        batch = train[torch.randint(len(train), (batch_size,), generator=generator)]
        z = mu[batch] + sigma[batch] * torch.randn(batch_size, mu.size(1), generator=generator)  # (B, Z) ~ q(z|x)
        loss = -flow.log_prob(z).mean()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(flow.parameters(), 10.0)
        optimizer.step()
        schedule.step()
    flow.eval()
    model.requires_grad_(True)
    with torch.no_grad():
        after = model.prior_log_prob(held_out).mean().item()
    log.info("prior fitted on %d posterior draws of %d molecules: held-out log p(z) %.1f -> %.1f nats",
             steps * batch_size, len(train), before, after)
    return model, {"molecules": float(len(train)), "held_out_log_prob_before": before,
                   "held_out_log_prob_after": after}


def fit_exemplar_prior(loaded: LoadedModel, smiles: Sequence[str], *, count: int = ModelConfig.exemplars,
                       spread: float = ModelConfig.exemplar_spread, seed: int = 0) -> MolVAE:
    """A copy of ``loaded.model`` that samples from the posteriors of ``count`` random molecules of
    ``smiles`` (widened by ``spread``); its weights and trained prior are unchanged."""
    if count < 1 or spread <= 0:
        raise ValueError(f"need count >= 1 and spread > 0, got {count} and {spread}")
    order = torch.randperm(len(smiles), generator=torch.Generator().manual_seed(seed))[:count].sort().values
    encoded = encode_smiles(loaded, [smiles[i] for i in order.tolist()])
    if not encoded.smiles:
        raise ValueError("none of the molecules can be encoded by this model")
    model = MolVAE(dataclasses.replace(loaded.model.config, exemplars=count, exemplar_spread=spread))
    state = {k: v for k, v in loaded.model.state_dict().items() if not k.startswith("exemplars.")}
    model.load_state_dict(state, strict=False)  # every weight; the exemplars are new
    model.exemplars.fit(encoded.mu, encoded.logvar)
    log.info("exemplar prior: posteriors of %d of %d molecules (%d not encodable), spread %.2f",
             len(encoded.smiles), len(smiles), len(encoded.rejected), spread)
    return model.eval()
