"""The SELFIES GRU VAE: encoder, reparameterization, autoregressive decoder, property head, loss.

Shapes: ``B`` batch, ``T`` tokens, ``E`` embedding, ``Z`` latent, ``V`` vocabulary, ``L`` decoder
layers, ``H`` decoder hidden size, ``P`` properties.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from molvae.vocab import BOS_ID, PAD_ID, UNK_ID

__all__ = ["LossTerms", "ModelConfig", "MolVAE", "VAEOutput", "gaussian_kl", "vae_loss"]


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of :class:`MolVAE`. ``vocab_size`` comes from the training data."""

    vocab_size: int = 0  # set from the vocabulary built on the training data
    embedding_dim: int = 64  # token embedding shared by encoder and decoder
    encoder_hidden: int = 256  # per direction of the bidirectional encoder GRU
    encoder_layers: int = 1  # stacked encoder GRU layers
    latent_dim: int = 64  # size of z; 32-128 suits drug-like molecules
    decoder_hidden: int = 512  # decoder GRU width; the decoder does most of the work
    decoder_layers: int = 2  # stacked decoder GRU layers
    dropout: float = 0.1  # between stacked GRU layers (no effect with a single layer)
    property_names: list[str] = field(default_factory=list)  # properties predicted from z (joint head)
    property_hidden: int = 128  # width of the property head's hidden layer


@dataclass
class VAEOutput:
    logits: torch.Tensor  # (B, T-1, V) next-token logits for targets tokens[:, 1:]
    mu: torch.Tensor  # (B, Z)
    logvar: torch.Tensor  # (B, Z)
    z: torch.Tensor  # (B, Z)
    properties: torch.Tensor | None  # (B, P) normalized property predictions


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension, shape of ``mu``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


class MolVAE(nn.Module):
    """Bidirectional GRU encoder -> (mu, logvar) -> z -> GRU decoder fed z at every step."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size <= 4:
            raise ValueError(f"vocab_size must exceed the 4 special tokens, got {config.vocab_size}")
        self.config = config
        c = config
        self.embedding = nn.Embedding(c.vocab_size, c.embedding_dim, padding_idx=PAD_ID)
        self.encoder = nn.GRU(c.embedding_dim, c.encoder_hidden, c.encoder_layers, batch_first=True,
                              bidirectional=True, dropout=c.dropout if c.encoder_layers > 1 else 0.0)
        self.to_mu = nn.Linear(2 * c.encoder_hidden, c.latent_dim)
        self.to_logvar = nn.Linear(2 * c.encoder_hidden, c.latent_dim)
        self.latent_to_hidden = nn.Linear(c.latent_dim, c.decoder_layers * c.decoder_hidden)
        self.decoder = nn.GRU(c.embedding_dim + c.latent_dim, c.decoder_hidden, c.decoder_layers,
                              batch_first=True, dropout=c.dropout if c.decoder_layers > 1 else 0.0)
        self.output = nn.Linear(c.decoder_hidden, c.vocab_size)
        n_props = len(c.property_names)
        self.property_head = (
            nn.Sequential(nn.Linear(c.latent_dim, c.property_hidden), nn.SiLU(), nn.Linear(c.property_hidden, n_props))
            if n_props else None
        )
        # Label normalization, stored with the weights so predictions can be put back in units.
        self.register_buffer("property_mean", torch.zeros(n_props))
        self.register_buffer("property_std", torch.ones(n_props))

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each (B, Z), for padded token ids (B, T) with true ``lengths`` (B,)."""
        embedded = self.embedding(tokens)  # (B, T, E)
        packed = pack_padded_sequence(embedded, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, hidden = self.encoder(packed)  # (layers * 2, B, He)
        final = torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (B, 2He) last layer, both directions
        return self.to_mu(final), self.to_logvar(final)

    @staticmethod
    def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        noise = torch.randn(mu.shape, device=mu.device, dtype=mu.dtype, generator=generator)  # (B, Z)
        return mu + noise * torch.exp(0.5 * logvar)

    def initial_hidden(self, z: torch.Tensor) -> torch.Tensor:
        """Decoder GRU state (L, B, H) computed from z (B, Z)."""
        c = self.config
        hidden = torch.tanh(self.latent_to_hidden(z))  # (B, L * H)
        return hidden.view(-1, c.decoder_layers, c.decoder_hidden).transpose(0, 1).contiguous()  # (L, B, H)

    def decode_logits(self, z: torch.Tensor, inputs: torch.Tensor) -> torch.Tensor:
        """Teacher-forced next-token logits (B, T, V) for decoder inputs (B, T) given z (B, Z)."""
        embedded = self.embedding(inputs)  # (B, T, E)
        z_steps = z.unsqueeze(1).expand(-1, inputs.size(1), -1)  # (B, T, Z)
        states, _ = self.decoder(torch.cat([embedded, z_steps], dim=-1), self.initial_hidden(z))  # (B, T, H)
        return self.output(states)  # (B, T, V)

    def step(self, z: torch.Tensor, token: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One autoregressive step: logits (B, V) and the new state (L, B, H) for token (B,)."""
        embedded = self.embedding(token).unsqueeze(1)  # (B, 1, E)
        state, hidden = self.decoder(torch.cat([embedded, z.unsqueeze(1)], dim=-1), hidden)  # (B, 1, H)
        return self.output(state.squeeze(1)), hidden  # (B, V), (L, B, H)

    def predict_properties(self, z: torch.Tensor) -> torch.Tensor:
        """Property predictions (B, P) in the labels' own units."""
        if self.property_head is None:
            raise ValueError("this model has no property head (model.property_names is empty)")
        return self.property_head(z) * self.property_std + self.property_mean

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor, word_dropout: float = 0.0,
                generator: torch.Generator | None = None, sample_z: bool = True) -> VAEOutput:
        mu, logvar = self.encode(tokens, lengths)  # (B, Z) each
        z = self.reparameterize(mu, logvar, generator) if sample_z else mu  # (B, Z)
        inputs = tokens[:, :-1]  # (B, T-1) BOS ... last symbol
        if word_dropout > 0 and self.training:
            drop = torch.rand(inputs.shape, device=inputs.device, generator=generator) < word_dropout
            drop &= (inputs != PAD_ID) & (inputs != BOS_ID)  # (B, T-1)
            inputs = inputs.masked_fill(drop, UNK_ID)
        logits = self.decode_logits(z, inputs)  # (B, T-1, V)
        properties = self.property_head(mu) if self.property_head is not None else None  # (B, P)
        return VAEOutput(logits, mu, logvar, z, properties)


@dataclass
class LossTerms:
    loss: torch.Tensor  # scalar to minimize
    reconstruction: torch.Tensor  # (B,) summed token NLL per molecule
    kl: torch.Tensor  # (B,) KL per molecule
    kl_per_dim: torch.Tensor  # (Z,) batch-mean KL of each latent dimension
    correct_tokens: torch.Tensor  # scalar count of correctly predicted target tokens
    n_tokens: torch.Tensor  # scalar count of target tokens
    exact: torch.Tensor  # (B,) whether every target token is predicted correctly (teacher forced)
    property_loss: torch.Tensor  # scalar MSE on normalized labels (0 without a head)


def vae_loss(output: VAEOutput, tokens: torch.Tensor, kl_weight: float, free_bits: float = 0.0,
             labels: torch.Tensor | None = None, property_weight: float = 1.0) -> LossTerms:
    """Negative ELBO per molecule (token NLL summed over the sequence + weighted KL), batch-averaged.

    ``free_bits`` (nats per latent dimension) stops the KL term from pushing a dimension's
    batch-mean KL below that floor, a guard against posterior collapse. ``labels`` (B, P) are
    normalized property targets, NaN where missing.
    """
    targets = tokens[:, 1:]  # (B, T-1)
    mask = targets != PAD_ID  # (B, T-1)
    logits = output.logits.float()
    token_nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T-1)
    reconstruction = (token_nll * mask).sum(dim=1)  # (B,)
    kl_per_dim_each = gaussian_kl(output.mu.float(), output.logvar.float())  # (B, Z)
    kl_per_dim = kl_per_dim_each.mean(dim=0)  # (Z,)
    kl_for_loss = kl_per_dim.clamp(min=free_bits).sum() if free_bits > 0 else kl_per_dim.sum()
    loss = reconstruction.mean() + kl_weight * kl_for_loss
    property_loss = torch.zeros((), device=tokens.device)
    if output.properties is not None and labels is not None:
        known = ~torch.isnan(labels)  # (B, P)
        if known.any():
            diff = (output.properties.float() - torch.nan_to_num(labels)) * known
            property_loss = diff.pow(2).sum() / known.sum()
            loss = loss + property_weight * property_loss
    correct = (logits.argmax(dim=-1) == targets) & mask  # (B, T-1)
    exact = (correct | ~mask).all(dim=1)  # (B,)
    return LossTerms(loss, reconstruction, kl_per_dim_each.sum(dim=1), kl_per_dim,
                     correct.sum(), mask.sum(), exact, property_loss)
