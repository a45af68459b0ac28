"""The SELFIES GRU VAE: encoder, reparameterization, autoregressive decoder, property head, loss.

Shapes: ``B`` batch, ``T`` tokens, ``E`` embedding, ``Z`` latent, ``V`` vocabulary, ``L`` decoder
layers, ``H`` decoder hidden size, ``P`` properties.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from molvae.vocab import BOS_ID, PAD_ID, SPECIAL_TOKENS, UNK_ID

__all__ = ["ExemplarPrior", "FlowPrior", "LossTerms", "MixturePrior", "ModelConfig", "MolVAE", "VAEOutput",
           "bidirectional_final_state", "gaussian_kl", "gaussian_log_prob", "mmd_to_samples", "property_head", "run_gru",
           "vae_loss"]

PRIORS = ("gaussian", "flow", "mixture")


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
    property_hidden: int = 128  # width of the property head's hidden layers
    property_layers: int = 1  # hidden layers of the property head
    prior: str = "flow"  # p(z): flow (RealNVP over N(0, I), learned with the VAE), mixture (learned Gaussians) or gaussian (N(0, I))
    prior_layers: int = 6  # flow: affine coupling layers
    prior_hidden: int = 256  # flow: width of each coupling network
    prior_components: int = 64  # mixture: Gaussian components
    exemplars: int = 20000  # sampling draws z from the posteriors of this many training molecules, fitted after training (0 = from the prior)
    exemplar_spread: float = 2.6  # their posterior standard deviations are widened by this factor: higher = more novel, less like the data


def property_head(latent_dim: int, hidden: int, layers: int, n_props: int) -> nn.Sequential:
    """The MLP ``z -> normalized properties``: ``layers`` SiLU hidden layers of width ``hidden``."""
    sizes = [latent_dim] + [hidden] * layers
    modules: list[nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        modules += [nn.Linear(fan_in, fan_out), nn.SiLU()]
    return nn.Sequential(*modules, nn.Linear(sizes[-1], n_props))


@dataclass
class VAEOutput:
    logits: torch.Tensor  # (B, T-1, V) next-token logits for targets tokens[:, 1:]
    mu: torch.Tensor  # (B, Z)
    logvar: torch.Tensor  # (B, Z)
    z: torch.Tensor  # (B, Z)
    properties: torch.Tensor | None  # (B, P) normalized property predictions
    kl: torch.Tensor | None = None  # (B,) KL(q(z|x) || p(z)); None = the analytic N(0, I) KL


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per latent dimension, shape of ``mu``."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)


_LOG_2PI = math.log(2 * math.pi)


def gaussian_log_prob(z: torch.Tensor, mu: torch.Tensor | None = None, logvar: torch.Tensor | None = None) -> torch.Tensor:
    """log N(z; mu, diag(exp(logvar))) summed over the last dimension (N(0, I) when mu is None).

    >>> round(gaussian_log_prob(torch.zeros(1, 2)).item(), 4)  # -log(2 pi)
    -1.8379
    """
    if mu is None:
        return -0.5 * (z.pow(2) + _LOG_2PI).sum(dim=-1)
    return -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI).sum(dim=-1)


class _Coupling(nn.Module):
    """RealNVP affine coupling: the dimensions outside ``mask`` are scaled and shifted by a network
    of the dimensions inside it. Starts as the identity."""

    def __init__(self, dim: int, hidden: int, mask: torch.Tensor):
        super().__init__()
        self.register_buffer("mask", mask)  # (Z,) 1 = conditioning dimension
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden), nn.SiLU(),
                                 nn.Linear(hidden, 2 * dim))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def _scale_shift(self, kept: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        log_scale, shift = self.net(kept).chunk(2, dim=-1)  # (B, Z) each
        free = 1 - self.mask
        return torch.tanh(log_scale) * 2.0 * free, shift * free  # scales bounded to [e^-2, e^2]

    def forward(self, u: torch.Tensor) -> torch.Tensor:  # base -> latent
        log_scale, shift = self._scale_shift(u * self.mask)
        return u * torch.exp(log_scale) + shift

    def inverse(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # latent -> base, log|det dz/du|
        log_scale, shift = self._scale_shift(z * self.mask)
        return (z - shift) * torch.exp(-log_scale), log_scale.sum(dim=-1)


class FlowPrior(nn.Module):
    """p(z) = N(u; 0, I) |det du/dz| with z = f(u), f a stack of RealNVP couplings (Dinh et al. 2017),
    learned jointly with the VAE so that the prior follows where the encoder puts molecules."""

    def __init__(self, dim: int, layers: int = 6, hidden: int = 256):
        super().__init__()
        masks = [torch.arange(dim) % 2 == i % 2 for i in range(layers)]  # alternating halves
        self.layers = nn.ModuleList(_Coupling(dim, hidden, m.float()) for m in masks)

    def to_latent(self, u: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            u = layer(u)
        return u

    def to_base(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(u, log|det dz/du|)`` for latent points z (B, Z)."""
        logdet = torch.zeros(z.shape[:-1], device=z.device, dtype=z.dtype)
        for layer in reversed(self.layers):
            z, step = layer.inverse(z)
            logdet = logdet + step
        return z, logdet

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        u, logdet = self.to_base(z)
        return gaussian_log_prob(u) - logdet

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.layers[0].mask.device
        return self.to_latent(torch.randn(n, self.layers[0].mask.numel(), device=device, generator=generator))


class MixturePrior(nn.Module):
    """p(z) = sum_k w_k N(z; m_k, diag(s_k^2)), learned jointly with the VAE (a VampPrior without
    pseudo-inputs: the components are free parameters)."""

    def __init__(self, dim: int, components: int = 64):
        super().__init__()
        self.means = nn.Parameter(torch.randn(components, dim) * 0.5)  # (K, Z)
        self.logvars = nn.Parameter(torch.zeros(components, dim))  # (K, Z)
        self.logits = nn.Parameter(torch.zeros(components))  # (K,)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        per = gaussian_log_prob(z.unsqueeze(-2), self.means, self.logvars)  # (B, K)
        return torch.logsumexp(per + self.logits.log_softmax(dim=0), dim=-1)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        device = self.means.device
        k = torch.multinomial(self.logits.softmax(dim=0), n, replacement=True, generator=generator)  # (n,)
        noise = torch.randn(n, self.means.size(1), device=device, generator=generator)
        return self.means[k] + noise * torch.exp(0.5 * self.logvars[k])


class ExemplarPrior(nn.Module):
    """The sampling distribution q(z) = 1/K sum_k N(z; mu_k, diag((spread sigma_k)^2)): the posteriors
    of K training molecules, i.e. the aggregate posterior the decoder was trained on (Exemplar VAE,
    Norouzi et al. 2020; a VampPrior whose pseudo-inputs are real molecules, Tomczak & Welling 2018).

    Empty until :meth:`fit` is given the posteriors of training molecules after training; stored with
    the weights (half precision). Only sampling uses it: the KL term and the optimizers' prior
    penalty keep the trained prior. ``spread`` > 1 widens each posterior, trading likeness to the
    data for novelty.
    """

    def __init__(self, dim: int, spread: float = 1.0):
        super().__init__()
        self.spread = spread
        self.resize(0, dim)

    def resize(self, count: int, dim: int | None = None) -> None:
        """Make room for ``count`` exemplars (zeros; 0 = empty), e.g. before loading stored ones."""
        dim = self.means.size(1) if dim is None else dim
        device = self.means.device if hasattr(self, "means") else None
        self.register_buffer("means", torch.zeros(count, dim, dtype=torch.float16, device=device))  # (K, Z)
        self.register_buffer("sigmas", torch.zeros(count, dim, dtype=torch.float16, device=device))  # (K, Z)

    @property
    def fitted(self) -> bool:
        return self.means.size(0) > 0

    @torch.no_grad()
    def fit(self, mu: torch.Tensor, logvar: torch.Tensor) -> None:
        """Hold the posteriors (mu, logvar) (K, Z) of K training molecules."""
        self.resize(mu.size(0))
        self.means.copy_(mu)
        self.sigmas.copy_(torch.exp(0.5 * logvar))

    def sample(self, n: int, generator: torch.Generator | None = None, spread: float | None = None) -> torch.Tensor:
        """``n`` draws (n, Z) at ``spread`` (default: the prior's own)."""
        if not self.fitted:
            raise RuntimeError("the exemplar prior has not been fitted to training molecules")
        return self.draw(self.means.float(), self.sigmas.float(), n, self.spread if spread is None else spread,
                         generator)

    @staticmethod
    def draw(mu: torch.Tensor, sigma: torch.Tensor, n: int, spread: float,
             generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws (n, Z), each from a uniformly chosen posterior N(mu_k, diag((spread sigma_k)^2)).

        The posteriors are chosen without replacement (a fresh random order every K draws): each
        draw is still uniform over them, but no exemplar is used twice before all have been used,
        so a sample of up to K molecules never holds two decodes of one exemplar.
        """
        count = mu.size(0)
        order = [torch.randperm(count, device=mu.device, generator=generator) for _ in range(-(-n // count))]
        k = torch.cat(order)[:n]  # (n,)
        noise = torch.randn(n, mu.size(1), device=mu.device, generator=generator)
        return mu[k] + spread * sigma[k] * noise


def mmd_to_samples(z: torch.Tensor, reference: torch.Tensor, scales: tuple[float, ...] = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)) -> torch.Tensor:
    """Unbiased squared maximum mean discrepancy between two samples (B, Z) with inverse multiquadric
    kernels k(a, b) = C / (C + |a - b|^2), C = 2 Z s for each scale s (as in WAE, Tolstikhin et al. 2018)."""
    n, dim = z.shape
    joint = torch.cat([z, reference])  # (2B, Z)
    distances = torch.cdist(joint, joint).pow(2)  # (2B, 2B)
    kernel = sum(c / (c + distances) for c in (2.0 * dim * s for s in scales))
    off_diagonal = 1 - torch.eye(n, device=z.device, dtype=z.dtype)
    xx = (kernel[:n, :n] * off_diagonal).sum() / (n * (n - 1))
    yy = (kernel[n:, n:] * off_diagonal).sum() / (n * (n - 1))
    xy = kernel[:n, n:].mean()
    return xx + yy - 2 * xy


def _cpu_autocast_dtype(inputs: torch.Tensor) -> torch.dtype | None:
    """The dtype CPU autocast computes matrix products in, when it is on for ``inputs``."""
    return torch.get_autocast_dtype("cpu") if inputs.device.type == "cpu" and torch.is_autocast_enabled("cpu") else None


def _gru_layers(gru: nn.GRU, inputs: torch.Tensor, hidden: torch.Tensor, weights: list[torch.Tensor], layers: int,
                bidirectional: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``layers`` layers of ``gru`` with ``weights`` (a slice of its ``_flat_weights``), what
    ``nn.GRU.forward`` runs, with inputs, state and weights cast to the CPU autocast dtype when it is on."""
    if (dtype := _cpu_autocast_dtype(inputs)) is not None:
        inputs, hidden, weights = inputs.to(dtype), hidden.to(dtype), [w.to(dtype) for w in weights]
    return torch._VF.gru(inputs, hidden, weights, gru.bias, layers, float(gru.dropout), gru.training, bidirectional,
                         gru.batch_first)


def run_gru(gru: nn.GRU, inputs: torch.Tensor, hidden: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``gru(inputs, hidden)``, in the dtype CPU autocast computes matrix products in.

    torch's CPU autocast leaves ``nn.GRU`` in fp32 (CUDA's casts it); on a CPU with bf16 units the
    recurrence is most of a training step and runs about twice as fast in bf16 (docs/studies/
    2026-12-07-faster-training.md), so under CPU autocast its inputs, state and weights are cast
    here, as autocast casts a linear layer's: gradients reach the fp32 weights through the casts.
    """
    if _cpu_autocast_dtype(inputs) is None:
        return gru(inputs, hidden)
    return _gru_layers(gru, inputs, hidden, gru._flat_weights, gru.num_layers, gru.bidirectional)


def _one_direction(gru: nn.GRU, layer: int, direction: int, inputs: torch.Tensor) -> torch.Tensor:
    """States (B, T, H) of one layer and direction of ``gru`` run forward over ``inputs`` (B, T, In)
    from a zero state, under CPU autocast in its dtype (:func:`run_gru`)."""
    per_direction = 4 if gru.bias else 2  # w_ih, w_hh, (b_ih, b_hh) per layer and direction
    first = (2 * layer + direction) * per_direction
    initial = inputs.new_zeros(1, inputs.size(0), gru.hidden_size)  # (1, B, H)
    states, _ = _gru_layers(gru, inputs, initial, gru._flat_weights[first:first + per_direction], 1, False)
    return states


def bidirectional_final_state(gru: nn.GRU, inputs: torch.Tensor, lengths: torch.Tensor,
                              packed: bool | None = None) -> torch.Tensor:
    """The last layer's final state of both directions (B, 2H) of a bidirectional batch-first ``gru``
    over right-padded ``inputs`` (B, T, E) with true ``lengths`` (B,), padding never entering it.

    ``packed`` (default: off the CPU) runs the GRU on a packed batch, which cuDNN steps through in
    fused kernels. On the CPU torch steps through a packed batch's ragged time steps in many small
    operations (a tenth of the matmul peak, docs/studies/2026-12-07-faster-training.md), so there
    each direction runs as a plain padded sequence instead: torch projects the inputs of all time
    steps in one matrix product and steps through full-width batches. The backward direction reads
    every molecule reversed within its own length, pads left in place, and both states are read at
    the molecule's last token. The two ways give the same numbers up to rounding.
    """
    if packed if packed is not None else inputs.device.type != "cpu":
        _, hidden = gru(pack_padded_sequence(inputs, lengths.cpu(), batch_first=True, enforce_sorted=False))
        return torch.cat([hidden[-2], hidden[-1]], dim=-1)  # (B, 2H) last layer, both directions
    steps = torch.arange(inputs.size(1), device=inputs.device)  # (T,)
    lengths = lengths.to(inputs.device)
    last = (lengths - 1).clamp(min=0)  # (B,)
    inside = steps < lengths.unsqueeze(1)  # (B, T)
    reverse_index = torch.where(inside, last.unsqueeze(1) - steps, steps).unsqueeze(-1)  # (B, T, 1) its own inverse
    layer_input = inputs  # (B, T, E)
    for layer in range(gru.num_layers):
        reversed_input = layer_input.gather(1, reverse_index.expand(-1, -1, layer_input.size(-1)))  # (B, T, In)
        forward = _one_direction(gru, layer, 0, layer_input)  # (B, T, H)
        backward = _one_direction(gru, layer, 1, reversed_input)  # (B, T, H) in reversed order
        if layer == gru.num_layers - 1:
            at_last = last.view(-1, 1, 1).expand(-1, 1, gru.hidden_size)  # (B, 1, H)
            return torch.cat([forward.gather(1, at_last).squeeze(1), backward.gather(1, at_last).squeeze(1)], dim=-1)
        backward = backward.gather(1, reverse_index.expand(-1, -1, gru.hidden_size))  # (B, T, H) in order
        layer_input = F.dropout(torch.cat([forward, backward], dim=-1), gru.dropout, gru.training)  # (B, T, 2H)
    raise ValueError("a GRU has at least one layer")


class MolVAE(nn.Module):
    """Bidirectional GRU encoder -> (mu, logvar) -> z -> GRU decoder fed z at every step."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size <= 4:
            raise ValueError(f"vocab_size must exceed the 4 special tokens, got {config.vocab_size}")
        if config.prior not in PRIORS:
            raise ValueError(f"model.prior must be one of {', '.join(PRIORS)}, got {config.prior!r}")
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
        self.property_head = (property_head(c.latent_dim, c.property_hidden, c.property_layers, n_props)
                              if n_props else None)
        # Label normalization, stored with the weights so predictions can be put back in units.
        self.register_buffer("property_mean", torch.zeros(n_props))
        self.register_buffer("property_std", torch.ones(n_props))
        self.prior: FlowPrior | MixturePrior | None = (
            FlowPrior(c.latent_dim, c.prior_layers, c.prior_hidden) if c.prior == "flow"
            else MixturePrior(c.latent_dim, c.prior_components) if c.prior == "mixture" else None
        )
        self.exemplars = ExemplarPrior(c.latent_dim, c.exemplar_spread) if c.exemplars > 0 else None

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        held = state_dict.get("exemplars.means")
        if self.exemplars is not None and held is not None:
            self.exemplars.resize(held.shape[0])  # as many as were fitted (none while training)
        return super().load_state_dict(state_dict, strict, assign)

    @torch.no_grad()
    def grow_vocabulary(self, size: int) -> None:
        """Room for ``size - vocab_size`` new symbols at the end of the vocabulary (fine-tuning on
        data that holds symbols the model has not seen). Every existing weight is kept; a new
        symbol's embedding starts at the mean of the known symbols' embeddings, and its output row
        at zero weight with the lowest known bias: the logits of known symbols do not change, and a
        new one starts unlikely until training teaches it."""
        old = self.config.vocab_size
        if size < old:
            raise ValueError(f"a vocabulary cannot shrink ({old} -> {size} symbols)")
        if size == old:
            return
        first = len(SPECIAL_TOKENS)
        embedding = nn.Embedding(size, self.config.embedding_dim, padding_idx=PAD_ID).to(self.embedding.weight)
        embedding.weight[:old] = self.embedding.weight
        embedding.weight[old:] = self.embedding.weight[first:].mean(dim=0)
        output = nn.Linear(self.config.decoder_hidden, size).to(self.output.weight)
        output.weight[:old], output.bias[:old] = self.output.weight, self.output.bias
        output.weight[old:], output.bias[old:] = 0.0, self.output.bias[first:].min()
        self.embedding, self.output = embedding, output
        self.config = dataclasses.replace(self.config, vocab_size=size)

    def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z) (B,) under the model's prior."""
        return gaussian_log_prob(z) if self.prior is None else self.prior.log_prob(z)

    def sample_latent(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` draws (n, Z) of what prior sampling decodes: from the exemplar prior once it is
        fitted, otherwise from the model's prior p(z)."""
        device = self.to_mu.weight.device
        if self.exemplars is not None and self.exemplars.fitted:
            return self.exemplars.sample(n, generator)
        if self.prior is None:
            return torch.randn(n, self.config.latent_dim, device=device, generator=generator)
        return self.prior.sample(n, generator)

    def kl(self, mu: torch.Tensor, logvar: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """KL(q(z|x) || p(z)) per molecule (B,): exact for the N(0, I) prior, a one-sample estimate
        log q(z|x) - log p(z) at the drawn z for a learned prior."""
        if self.prior is None:
            return gaussian_kl(mu.float(), logvar.float()).sum(dim=-1)
        z = z.float()
        return gaussian_log_prob(z, mu.float(), logvar.float()) - self.prior.log_prob(z)

    def encode(self, tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each (B, Z), for padded token ids (B, T) with true ``lengths`` (B,)."""
        final = bidirectional_final_state(self.encoder, self.embedding(tokens), lengths)  # (B, 2He)
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
        states, _ = run_gru(self.decoder, torch.cat([embedded, z_steps], dim=-1), self.initial_hidden(z))  # (B, T, H)
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
        kl = self.kl(mu, logvar, z) if self.prior is not None else None  # (B,)
        return VAEOutput(logits, mu, logvar, z, properties, kl)


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
    batch-mean KL below that floor, a guard against posterior collapse; with a learned prior
    (``output.kl`` set) the floor applies to the whole batch-mean KL (``free_bits * Z``).
    ``kl_per_dim`` is always the KL of each dimension to N(0, I), a diagnostic of which dimensions
    carry information. ``labels`` (B, P) are normalized property targets, NaN where missing.
    """
    targets = tokens[:, 1:]  # (B, T-1)
    mask = targets != PAD_ID  # (B, T-1)
    logits = output.logits.float()
    token_nll = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none")  # (B, T-1)
    reconstruction = (token_nll * mask).sum(dim=1)  # (B,)
    kl_per_dim_each = gaussian_kl(output.mu.float(), output.logvar.float())  # (B, Z)
    kl_per_dim = kl_per_dim_each.mean(dim=0)  # (Z,)
    if output.kl is None:
        kl = kl_per_dim_each.sum(dim=1)  # (B,)
        kl_for_loss = kl_per_dim.clamp(min=free_bits).sum() if free_bits > 0 else kl_per_dim.sum()
    else:
        kl = output.kl.float()  # (B,)
        kl_for_loss = kl.mean().clamp(min=free_bits * kl_per_dim.numel()) if free_bits > 0 else kl.mean()
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
    return LossTerms(loss, reconstruction, kl, kl_per_dim,
                     correct.sum(), mask.sum(), exact, property_loss)
