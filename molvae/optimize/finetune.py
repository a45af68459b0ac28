"""Weighted retraining during a search: a copy of the model is fine-tuned on the molecules scored so
far, the best weighted most (Tripp et al. 2020, "Sample-Efficient Optimization in the Latent Space of
Deep Generative Models via Weighted Retraining"), so its decoder writes more molecules like them."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Sequence

import torch

from molvae.model import vae_loss
from molvae.optimize.oracle import Oracle, padded_tokens

log = logging.getLogger(__name__)

RANK_WEIGHT_K = 1e-3  # Tripp et al.'s k: weight 1 / (k N + rank) over N scored molecules
FINETUNE_BATCH = 64  # molecules per fine-tuning step
FINETUNE_LEARNING_RATE = 1e-3  # Adam
FINETUNE_KL_WEIGHT = 0.1  # keeps the encoder's posteriors near the prior the search draws from


def rank_weights(scores: Sequence[float], k: float = RANK_WEIGHT_K) -> torch.Tensor:
    """Sampling weights (N,) summing to 1: ``1 / (k N + rank)``, rank 0 the best score.

    >>> [round(w, 3) for w in rank_weights([0.1, 0.9, 0.5], k=1.0).tolist()]
    [0.255, 0.426, 0.319]
    """
    values = torch.tensor(list(scores), dtype=torch.float64)  # (N,)
    ranks = torch.empty_like(values)
    ranks[values.argsort(descending=True, stable=True)] = torch.arange(len(values), dtype=torch.float64)
    weights = 1.0 / (k * len(values) + ranks)
    return weights / weights.sum()


class Finetuner:
    """Fine-tunes the oracle's model in place, after swapping in a copy (the caller's model is never
    changed): ``steps`` Adam steps on batches of the scored molecules drawn by :func:`rank_weights`,
    the VAE loss (reconstruction and a light KL term). The oracle forgets its encodings after each
    round of fine-tuning; the searches re-encode their parents."""

    def __init__(self, oracle: Oracle, steps: int, seed: int):
        oracle.loaded = dataclasses.replace(oracle.loaded, model=copy.deepcopy(oracle.loaded.model))
        self.oracle = oracle
        self.steps = steps
        self.optimizer = torch.optim.Adam(oracle.model.parameters(), lr=FINETUNE_LEARNING_RATE)
        self.generator = torch.Generator().manual_seed(seed)  # which molecules each step draws
        self.noise = torch.Generator(device=oracle.device).manual_seed(seed)  # the posterior samples z ~ q(z | x)

    def step(self) -> None:
        """One round of fine-tuning on the molecules scored so far (nothing before 2 are)."""
        scored = [c for c in self.oracle.candidates if c.score is not None]
        if len(scored) < 2:
            return
        weights = rank_weights([c.score for c in scored])
        model = self.oracle.model
        model.train()
        for _ in range(self.steps):
            drawn = torch.multinomial(weights, FINETUNE_BATCH, replacement=True, generator=self.generator)  # (B,)
            drawn_smiles = [scored[i].smiles for i in drawn.tolist()]
            symbols = self.oracle.symbols(drawn_smiles)
            if not symbols:
                continue
            tokens, lengths = padded_tokens([symbols[s] for s in drawn_smiles if s in symbols], self.oracle.device)
            with torch.enable_grad():
                loss = vae_loss(model(tokens, lengths, generator=self.noise), tokens, FINETUNE_KL_WEIGHT).loss
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
            self.optimizer.step()
        model.eval()
        self.oracle.model_changed()
        log.debug("fine-tuned %d steps on %d scored molecules", self.steps, len(scored))
