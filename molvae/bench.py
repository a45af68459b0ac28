"""Throughput measurements, molvae side by side with a plain reference implementation.

The reference is the same architecture run the way the MOSES VAE code runs it: random batches
padded to the longest molecule of the data set, fp32, and sampling that always runs the full
maximum length with single-process SELFIES decoding. Both run in one process on one machine, so
the ratio is a fair comparison of the engineering, not of the hardware.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from molvae.checkpoint import LoadedModel
from molvae.data import DataConfig, TokenizedSet, length_bucketed_batches, prepare, tokenize
from molvae.device import autocast, native_bf16, resolve_precision
from molvae.model import ModelConfig, MolVAE, run_gru, vae_loss
from molvae.sample import decode_latents
from molvae.vocab import BOS_ID, Vocabulary

__all__ = ["BenchResult", "format_profile", "matmul_peak", "profile_training_step", "run_benchmark", "run_profile"]


@dataclass
class BenchResult:
    name: str  # what was measured
    molvae: float  # molecules per second
    reference: float | None  # molecules per second of the plain implementation (None = not run)
    detail: str = ""

    @property
    def ratio(self) -> float | None:
        return self.molvae / self.reference if self.reference else None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mib(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def _train_throughput(model: MolVAE, data: TokenizedSet, batch_size: int, steps: int, device: torch.device,
                      precision: str, bucketed: bool) -> tuple[float, float]:
    """Molecules and token positions (padding included) per second over ``steps`` optimizer steps
    (after two warm-up steps)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    dtype = resolve_precision(precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    generator = torch.Generator().manual_seed(0)
    if bucketed:
        batches = length_bucketed_batches(data.lengths, batch_size, generator)
    else:
        batches = list(torch.randperm(len(data), generator=generator).split(batch_size))
    batches = [b for b in batches if len(b) == batch_size] or batches
    width = data.tokens.size(1)
    model.train()
    seen = positions = 0
    for step in range(steps + 2):
        if step == 2:
            _sync(device)
            started = time.perf_counter()
            seen = positions = 0
        index = batches[step % len(batches)]
        if bucketed:
            tokens, lengths = data.batch(index, device)
        else:  # padded to the data set's longest molecule, as the plain implementation does
            tokens, lengths = data.tokens[index, :width].long().to(device), data.lengths[index].to(device)
        with autocast(device, dtype):
            output = model(tokens, lengths)
        loss = vae_loss(output, tokens, 0.1).loss
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        seen += len(index)
        positions += tokens.numel()
    _sync(device)
    seconds = time.perf_counter() - started
    return seen / seconds, positions / seconds


def _flops_per_position(model: MolVAE, data: TokenizedSet, batch_size: int, device: torch.device,
                        precision: str) -> float:
    """FLOPs of a training step's forward and backward per token position of its batch: nearly all of
    them are per position (encoder, decoder, output layer), so positions/s times this is the step's rate."""
    dtype = resolve_precision(precision, device)
    index = length_bucketed_batches(data.lengths, batch_size, torch.Generator().manual_seed(0))[0]
    tokens, lengths = data.batch(index, device)

    def step() -> None:
        with autocast(device, dtype):
            output = model(tokens, lengths)
        vae_loss(output, tokens, 0.1).loss.backward()

    flops = _flops(step)
    model.zero_grad(set_to_none=True)
    return flops / tokens.numel()


def rnn_kernels(model: MolVAE, tokens: torch.Tensor, lengths: torch.Tensor, precision: str) -> str:
    """Which recurrent kernels one training step (forward and backward) runs, read off the profiler.

    On CUDA the GRU layers should run cuDNN's fused RNN (``aten::_cudnn_rnn`` and its backward) in
    every precision; a fallback to per-step cells (``gru_cell``) would be many times slower.
    """
    from torch.profiler import ProfilerActivity, profile

    device = tokens.device
    dtype = resolve_precision(precision, device)
    model.train()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        with autocast(device, dtype):
            output = model(tokens, lengths)
        vae_loss(output, tokens, 0.1).loss.float().backward()
    names = {event.key for event in prof.key_averages()}
    model.zero_grad(set_to_none=True)
    found = sorted(n for n in names if any(k in n.lower() for k in ("cudnn_rnn", "gru", "rnn")))
    if device.type != "cuda":
        return f"{', '.join(found) or 'no RNN ops recorded'} (cuDNN applies on CUDA only)"
    cudnn = {"forward": "aten::_cudnn_rnn" in names,
             "backward": any(k in n.lower() for n in names for k in ("cudnnrnnbackward", "_cudnn_rnn_backward"))}
    verdict = "cuDNN forward + backward" if all(cudnn.values()) else "not cuDNN for " + " and ".join(
        k for k, v in cudnn.items() if not v)
    return f"{verdict} ({', '.join(found) or 'no RNN ops recorded'})"


def matmul_peak(device: torch.device, dtype: torch.dtype = torch.float32, size: int = 1024,
                seconds: float = 1.0) -> float:
    """GFLOP/s of square matrix products of ``size`` at torch's current thread count: the
    arithmetic peak a training step is measured against.

    >>> matmul_peak(torch.device("cpu"), size=64, seconds=0.05) > 0
    True
    """
    a = torch.randn(size, size, device=device).to(dtype)
    b = torch.randn(size, size, device=device).to(dtype)
    for _ in range(2):
        a @ b  # warm-up: kernel selection, caches
    _sync(device)
    done, started = 0, time.perf_counter()
    while True:
        a @ b
        done += 1
        if done % 4 == 0:
            _sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= seconds:
                return 2 * size**3 * done / elapsed / 1e9


def _flops(run) -> float:
    """Floating-point operations (multiply-adds count two) of ``run()``, forward and backward."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run()
    return float(counter.get_total_flops())


def _timed(run, device: torch.device, repeats: int) -> float:
    """Mean seconds of ``run()`` over ``repeats`` calls after one warm-up call."""
    run()
    _sync(device)
    started = time.perf_counter()
    for _ in range(repeats):
        run()
    _sync(device)
    return (time.perf_counter() - started) / repeats


def profile_training_step(model: MolVAE, data: TokenizedSet, batch_size: int, device: torch.device,
                          repeats: int = 5, dtype: torch.dtype | None = None) -> list[dict[str, float | str]]:
    """Where one training step's time goes: each part run on its own, forward and backward, on one
    length-bucketed batch of ``batch_size``: data (batching and padding), encoder, decoder
    recurrence, output layer and loss, prior and property head, optimizer; then the whole step, each
    under autocast to ``dtype`` (None: fp32). Each row has milliseconds, the share of the whole step,
    FLOPs and the achieved GFLOP/s."""
    model.to(device).train()
    generator = torch.Generator().manual_seed(0)
    index = max(length_bucketed_batches(data.lengths, batch_size, generator), key=len)
    tokens, lengths = data.batch(index, device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with torch.no_grad(), autocast(device, dtype):
        mu, logvar = model.encode(tokens, lengths)
        z = model.reparameterize(mu, logvar)
        inputs = tokens[:, :-1]
        decoder_in = torch.cat([model.embedding(inputs), z.unsqueeze(1).expand(-1, inputs.size(1), -1)], dim=-1)
        states, _ = run_gru(model.decoder, decoder_in, model.initial_hidden(z))

    def encoder() -> None:
        with autocast(device, dtype):
            mu, logvar = model.encode(tokens, lengths)
        (mu.float().sum() + logvar.float().sum()).backward()

    def recurrence() -> None:
        with autocast(device, dtype):
            out, _ = run_gru(model.decoder, decoder_in.detach().requires_grad_(), model.initial_hidden(z.detach()))
        out.float().sum().backward()

    def output_and_loss() -> None:
        with autocast(device, dtype):
            logits = model.output(states.detach().requires_grad_())
        target = tokens[:, 1:]
        torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), target, ignore_index=0).backward()

    def prior_and_head() -> None:
        zz, m, lv = z.detach().float().requires_grad_(), mu.detach().float(), logvar.detach().float()
        with autocast(device, dtype):
            total = model.kl(m, lv, zz).sum() if model.prior is not None else zz.sum()
            if model.property_head is not None:
                total = total + model.property_head(m.requires_grad_()).float().sum()
        total.backward()

    def whole_step() -> None:
        with autocast(device, dtype):
            output = model(tokens, lengths)
        loss = vae_loss(output, tokens, 0.1).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def optimizer_step() -> None:
        if next(model.parameters()).grad is None:  # the gradients a step applies
            with autocast(device, dtype):
                output = model(tokens, lengths)
            vae_loss(output, tokens, 0.1).loss.backward()
        optimizer.step()

    whole_step()  # gradients and optimizer state exist for the parts below
    parts = {"data: batching and padding": lambda: data.batch(index, device), "encoder (forward + backward)": encoder,
             "decoder recurrence (forward + backward)": recurrence,
             "output layer and loss (forward + backward)": output_and_loss,
             "prior and property head (forward + backward)": prior_and_head, "optimizer step": optimizer_step}
    step_seconds = _timed(whole_step, device, repeats)
    rows = []
    for name, run in [*parts.items(), ("whole training step", whole_step)]:
        model.zero_grad(set_to_none=True)
        seconds = step_seconds if run is whole_step else _timed(run, device, repeats)
        flops = 0.0 if run is optimizer_step else _flops(run)  # Adam's element-wise work is no matmul
        rows.append({"part": name, "ms": 1e3 * seconds, "share": seconds / step_seconds, "gflop": flops / 1e9,
                     "gflops_per_s": flops / seconds / 1e9, "molecules": len(index)})
    return rows


def format_profile(rows: list[dict[str, float | str]], peak: float) -> str:
    """The profile as a table, each part's GFLOP/s also as a share of the matmul peak."""
    lines = [f"{'part':<46} {'ms':>8} {'of step':>8} {'GFLOP':>8} {'GFLOP/s':>8} {'of peak':>8}"]
    for row in rows:
        lines.append(f"{row['part']:<46} {row['ms']:8.2f} {row['share']:8.1%} {row['gflop']:8.2f} "
                     f"{row['gflops_per_s']:8.1f} {row['gflops_per_s'] / peak:8.1%}")
    return "\n".join(lines)


@torch.no_grad()
def _reference_sample(loaded: LoadedModel, z: torch.Tensor) -> list[str | None]:
    """MOSES-style sampling: the full maximum length every time, one process decodes SELFIES."""
    from molvae.chem import decode_selfies

    model = loaded.model
    hidden = model.initial_hidden(z)
    token = torch.full((z.size(0),), BOS_ID, dtype=torch.long, device=z.device)
    steps = []
    for _ in range(loaded.max_length - 1):
        logits, hidden = model.step(z, token, hidden)
        token = torch.multinomial(logits.float().softmax(dim=-1), 1).squeeze(1)
        steps.append(token)
    tokens = torch.stack(steps, dim=1).tolist()
    return [decode_selfies(loaded.vocab.decode(row)) for row in tokens]


def _model_data(prepared, model_config: ModelConfig, loaded: LoadedModel | None
                ) -> tuple[Vocabulary, TokenizedSet, ModelConfig]:
    """The vocabulary, tokenized molecules and model configuration a benchmark trains: the trained
    model's (``loaded``), else ``model_config`` with a vocabulary built on the data."""
    vocab = loaded.vocab if loaded else Vocabulary.build(prepared.kept["selfies"])
    kept = prepared.kept if loaded is None else prepared.restrict_to_vocabulary(vocab).kept
    data = tokenize(kept["selfies"].tolist(), kept["smiles"].tolist(), vocab)
    config = loaded.model.config if loaded else dataclasses.replace(model_config, vocab_size=len(vocab))
    return vocab, data, config


def run_profile(data_path: str | os.PathLike, model_config: ModelConfig, *, device: torch.device,
                batch_size: int = 256, loaded: LoadedModel | None = None, workers: int = 0,
                repeats: int = 5, precision: str = "auto") -> tuple[list[dict[str, float | str]], float, str]:
    """:func:`profile_training_step` of a fresh model of ``model_config`` (or ``loaded``'s sizes) on
    the molecules of ``data_path`` in ``precision``, this machine's matmul peak (GFLOP/s) in that
    precision, and its name."""
    with tempfile.TemporaryDirectory() as cache:
        prepared = prepare(data_path, DataConfig(cache_dir=cache, workers=workers, max_reject_fraction=1.0))
    _, data, config = _model_data(prepared, model_config, loaded)
    torch.manual_seed(0)
    dtype = resolve_precision(precision, device)
    rows = profile_training_step(MolVAE(config), data, batch_size, device, repeats, dtype)
    dtype = dtype or torch.float32
    return rows, matmul_peak(device, dtype), str(dtype).removeprefix("torch.")


def run_benchmark(data_path: str | os.PathLike, model_config: ModelConfig, *, device: torch.device,
                  batch_size: int = 256, train_steps: int = 30, n_sample: int = 5000, n_encode: int = 5000,
                  precision: str = "auto", reference: bool = True, loaded: LoadedModel | None = None,
                  workers: int = 0) -> tuple[list[BenchResult], dict[str, str]]:
    """Measure training, sampling and encoding throughput; returns results and machine facts.

    ``loaded`` (a trained model) makes sampling realistic: an untrained decoder emits molecules
    of random length. Without it, a freshly initialized model of ``model_config`` is used.
    """
    results = []
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        prepared = prepare(data_path, DataConfig(cache_dir=cache, workers=workers, max_reject_fraction=1.0))
        encode_rate = prepared.n_rows / (time.perf_counter() - started)
    n_encode = min(n_encode, len(prepared.kept))
    results.append(BenchResult("encoding (clean + SELFIES, all cores)", encode_rate, None,
                               f"{prepared.n_rows} rows from {Path(data_path).name}"))

    vocab, data, config = _model_data(prepared, model_config, loaded)
    torch.manual_seed(0)
    model = MolVAE(config).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    train_rate, position_rate = _train_throughput(model, data, batch_size, train_steps, device, precision,
                                                  bucketed=True)
    memory = _peak_memory_mib(device)
    dtype = resolve_precision(precision, device) or torch.float32
    gflops = position_rate * _flops_per_position(model, data, batch_size, device, precision) / 1e9
    peak = matmul_peak(device, dtype)
    tokens, lengths = data.batch(torch.arange(min(batch_size, len(data))), device)
    kernels = rnn_kernels(model, tokens, lengths, precision)
    reference_rate = None
    if reference:
        torch.manual_seed(0)
        plain = MolVAE(config).to(device)
        reference_rate, _ = _train_throughput(plain, data, batch_size, train_steps, device, "fp32", bucketed=False)
    precision_name = str(dtype).removeprefix("torch.")
    results.append(BenchResult("training (molecules/s)", train_rate, reference_rate,
                               f"batch {batch_size}, {train_steps} steps, {precision_name}, {gflops:.1f} GFLOP/s = "
                               f"{gflops / peak:.0%} of the {precision_name} matmul peak ({peak:.0f} GFLOP/s), "
                               f"peak memory {memory:.0f} MiB"))

    if loaded is None:
        loaded = LoadedModel(model.eval(), vocab, int(data.lengths.max()) + 8, {})
    loaded.model.to(device).eval()
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        z = loaded.model.sample_latent(n_sample, generator)  # (N, Z) from the model's prior
    _sync(device)
    started = time.perf_counter()
    smiles = decode_latents(loaded, z, temperature=1.0, generator=generator, batch_size=4096, workers=workers)
    _sync(device)
    sample_rate = n_sample / (time.perf_counter() - started)
    valid = sum(s is not None for s in smiles) / n_sample
    reference_sample = None
    if reference:
        n_ref = min(n_sample, 2000)
        started = time.perf_counter()
        for start in range(0, n_ref, 512):
            _reference_sample(loaded, z[start : start + 512])
        reference_sample = n_ref / (time.perf_counter() - started)
    results.append(BenchResult("sampling (latent -> canonical SMILES)", sample_rate, reference_sample,
                               f"{n_sample} molecules, validity {valid:.3f}"))
    machine = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({platform.processor() or platform.machine()})",
        "cpu_cores": str(os.cpu_count()),
        "torch_threads": str(torch.get_num_threads()),
        "torch": str(torch.__version__),
        "precision": precision_name + (" (auto)" if precision == "auto" else ""),
        "bf16_units": str(native_bf16()) if device.type == "cpu" else "-",
        "training_gflops_per_s": f"{gflops:.1f}",
        "matmul_peak_gflops": f"{peak:.1f}",
        "rnn_kernels": kernels,
    }
    return results, machine
