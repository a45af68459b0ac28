"""Generation and inference with a trained model: prior sampling, decoding with temperature /
top-k, encoding SMILES to latent points, reconstruction, interpolation, sampling around a
molecule and per-molecule negative ELBO scores."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from molvae.checkpoint import LoadedModel
from molvae.chem import StandardizeOptions, clean_smiles, decode_selfies_list
from molvae.data import tokenize
from molvae.model import VAEOutput, gaussian_kl, vae_loss
from molvae.parallel import ChunkMapper
from molvae.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID

__all__ = [
    "EncodedSmiles",
    "decode_latents",
    "elbo_scores",
    "encode_smiles",
    "generate_tokens",
    "interpolate",
    "sample_around",
    "sample_prior",
    "selfies_to_smiles",
]

_PARALLEL_DECODE_MIN = 20000


@torch.no_grad()
def generate_tokens(loaded: LoadedModel, z: torch.Tensor, temperature: float = 1.0, top_k: int = 0,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Autoregressive decoding of latent points z (B, Z) into token ids (B, T), PAD after EOS.

    ``temperature == 0`` decodes greedily; ``top_k > 0`` samples among the k likeliest tokens.
    """
    model = loaded.model
    batch = z.size(0)
    hidden = model.initial_hidden(z)  # (L, B, H)
    token = torch.full((batch,), BOS_ID, dtype=torch.long, device=z.device)  # (B,)
    finished = torch.zeros(batch, dtype=torch.bool, device=z.device)  # (B,)
    banned = torch.tensor([PAD_ID, BOS_ID, UNK_ID], device=z.device)
    steps = []
    for _ in range(loaded.max_length - 1):
        logits, hidden = model.step(z, token, hidden)  # (B, V), (L, B, H)
        logits = logits.float()
        logits[:, banned] = -math.inf
        if temperature == 0:
            token = logits.argmax(dim=-1)  # (B,)
        else:
            logits = logits / temperature
            if 0 < top_k < logits.size(-1):
                kth = logits.topk(top_k, dim=-1).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth, -math.inf)
            token = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)  # (B,)
        token = token.masked_fill(finished, PAD_ID)
        steps.append(token)
        finished |= token == EOS_ID
        if bool(finished.all()):
            break
    return torch.stack(steps, dim=1)  # (B, T)


def selfies_to_smiles(selfies: Sequence[str], workers: int = 0) -> list[str | None]:
    """Canonical SMILES for each SELFIES string (``None`` when invalid); a process pool for large inputs."""
    with ChunkMapper(workers) as mapper:
        return mapper.flat_map(decode_selfies_list, selfies, min_parallel=_PARALLEL_DECODE_MIN, max_chunk=20000)


def decode_latents(loaded: LoadedModel, z: torch.Tensor, temperature: float = 0.0, top_k: int = 0,
                   generator: torch.Generator | None = None, batch_size: int = 1024, workers: int = 0,
                   progress: bool = False) -> list[str | None]:
    """Canonical SMILES decoded from latent points z (N, Z); ``None`` where the decode is empty."""
    selfies = []
    for start in tqdm(range(0, z.size(0), batch_size), desc="decoding", unit="batch", disable=None if progress else True):
        tokens = generate_tokens(loaded, z[start : start + batch_size].to(loaded.device), temperature, top_k, generator)
        selfies.extend(loaded.vocab.decode(row) for row in tokens.tolist())
    return selfies_to_smiles(selfies, workers)


def sample_prior(loaded: LoadedModel, n: int, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
                 batch_size: int = 1024, workers: int = 0, progress: bool = True) -> list[str | None]:
    """``n`` molecules decoded from z ~ p(z), the model's prior (N(0, I) or the learned one);
    reproducible for a given seed and device."""
    generator = torch.Generator(device=loaded.device).manual_seed(seed)
    with torch.no_grad():
        z = loaded.model.sample_latent(n, generator)  # (N, Z)
    return decode_latents(loaded, z, temperature, top_k, generator, batch_size, workers, progress)


@dataclass
class EncodedSmiles:
    """Latent encodings of input SMILES, with every input accounted for."""

    index: list[int]  # positions in the input that were encoded
    smiles: list[str]  # their canonical SMILES
    selfies: list[str]  # their SELFIES
    mu: torch.Tensor  # (N, Z)
    logvar: torch.Tensor  # (N, Z)
    rejected: list[tuple[int, str, str]]  # (position, reason, detail) for the others


@torch.no_grad()
def encode_smiles(loaded: LoadedModel, smiles: Sequence[str], batch_size: int = 1024,
                  options: StandardizeOptions | None = None) -> EncodedSmiles:
    """Standardize (by default as the model's training data was), SELFIES-encode and encode SMILES to
    (mu, logvar); reject what the model cannot read."""
    options = options or loaded.standardize_options
    vocab = loaded.vocab
    max_tokens = loaded.max_length - 2
    index, canonical, selfies, rejected = [], [], [], []
    for i, raw in enumerate(smiles):
        can, sel, reason, detail = clean_smiles(raw, options, max_tokens)
        if reason is None:
            unknown = vocab.unknown_symbols(sel)
            if unknown:
                reason, detail = "unknown_token", f"not in vocabulary: {' '.join(sorted(set(unknown)))}"
        if reason is not None:
            rejected.append((i, reason, detail))
            continue
        index.append(i)
        canonical.append(can)
        selfies.append(sel)
    latent = loaded.model.config.latent_dim
    mus, logvars = [torch.empty(0, latent)], [torch.empty(0, latent)]
    if selfies:
        data = tokenize(selfies, canonical, vocab)
        for start in tqdm(range(0, len(data), batch_size), desc="encoding", unit="batch",
                          disable=None if len(data) >= 20 * batch_size else True):
            batch = torch.arange(start, min(start + batch_size, len(data)))
            tokens, lengths = data.batch(batch, loaded.device)
            mu, logvar = loaded.model.encode(tokens, lengths)
            mus.append(mu.float().cpu())
            logvars.append(logvar.float().cpu())
    return EncodedSmiles(index, canonical, selfies, torch.cat(mus), torch.cat(logvars), rejected)


def interpolate(loaded: LoadedModel, start: str, end: str, steps: int = 8, spherical: bool = True) -> list[str | None]:
    """Greedy decodes of ``steps`` points on the path between the encodings (mu) of two molecules."""
    encoded = encode_smiles(loaded, [start, end])
    if encoded.rejected:
        position, reason, detail = encoded.rejected[0]
        raise ValueError(f"cannot encode {[start, end][position]!r}: {reason} {detail}".strip())
    a, b = encoded.mu[0], encoded.mu[1]  # (Z,)
    t = torch.linspace(0, 1, steps).unsqueeze(1)  # (S, 1)
    if spherical:
        omega = torch.arccos(torch.clamp(torch.dot(a / a.norm(), b / b.norm()), -1.0, 1.0))
        if omega.abs() < 1e-6:
            path = (1 - t) * a + t * b
        else:
            path = (torch.sin((1 - t) * omega) * a + torch.sin(t * omega) * b) / torch.sin(omega)  # (S, Z)
    else:
        path = (1 - t) * a + t * b  # (S, Z)
    return decode_latents(loaded, path.to(loaded.device))


def sample_around(loaded: LoadedModel, smiles: str, n: int = 20, radius: float = 0.5, seed: int = 0) -> list[str | None]:
    """Greedy decodes of ``n`` points drawn from N(mu, radius^2 I) around a molecule's encoding."""
    encoded = encode_smiles(loaded, [smiles])
    if encoded.rejected:
        _, reason, detail = encoded.rejected[0]
        raise ValueError(f"cannot encode {smiles!r}: {reason} {detail}".strip())
    generator = torch.Generator().manual_seed(seed)
    z = encoded.mu[0] + radius * torch.randn(n, encoded.mu.size(1), generator=generator)  # (N, Z)
    return decode_latents(loaded, z.to(loaded.device))


@torch.no_grad()
def elbo_scores(loaded: LoadedModel, smiles: Sequence[str], n_samples: int = 1, seed: int = 0,
                batch_size: int = 512) -> tuple[EncodedSmiles, torch.Tensor, torch.Tensor]:
    """Per-molecule reconstruction NLL and KL (nats); their sum is the negative ELBO, an
    out-of-distribution score (higher = less like the training data).

    Returns ``(encoded, nll (N,), kl (N,))``, averaging the NLL over ``n_samples`` draws of z.
    """
    encoded = encode_smiles(loaded, smiles, batch_size)
    model = loaded.model
    if not encoded.smiles:
        return encoded, torch.empty(0), torch.empty(0)
    data = tokenize(encoded.selfies, encoded.smiles, loaded.vocab)
    generator = torch.Generator(device=loaded.device).manual_seed(seed)
    nll = torch.zeros(len(data))
    for start in range(0, len(data), batch_size):
        batch = torch.arange(start, min(start + batch_size, len(data)))
        tokens, lengths = data.batch(batch, loaded.device)
        mu, logvar = encoded.mu[batch].to(loaded.device), encoded.logvar[batch].to(loaded.device)
        total = torch.zeros(len(batch), device=loaded.device)
        for _ in range(n_samples):
            z = model.reparameterize(mu, logvar, generator)
            logits = model.decode_logits(z, tokens[:, :-1])  # (B, T-1, V)
            terms = vae_loss(VAEOutput(logits, mu, logvar, z, None), tokens, kl_weight=0.0)
            total += terms.reconstruction
        nll[batch] = (total / n_samples).cpu()
    kl = gaussian_kl(encoded.mu, encoded.logvar).sum(dim=1)
    return encoded, nll, kl

