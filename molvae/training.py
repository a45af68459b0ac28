"""The training loop. Returns a :class:`TrainResult`; knows nothing about the user's files.

Checkpoint writing is delegated to a ``save`` callback, tracking to a :class:`Tracker`, and a
stop request (Ctrl-C / SIGTERM) arrives through a ``threading.Event``.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from typing import Any

import torch
from tqdm.auto import tqdm

from molvae.checkpoint import LoadedModel
from molvae.data import TokenizedSet, length_bucketed_batches
from molvae.device import autocast, resolve_precision
from molvae.errors import TrainingDiverged
from molvae.metrics import generation_quality, novelty, uniqueness, validity
from molvae.model import ExemplarPrior, MolVAE, VAEOutput, mmd_to_samples, vae_loss
from molvae.tracking import NullTracker, Tracker
from molvae.vocab import Vocabulary

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "control_kl_weight", "fit", "fit_exemplars", "kl_weight"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Optimization, KL schedule, evaluation and hardware settings."""

    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 256  # molecules per step
    learning_rate: float = 1e-3  # peak Adam learning rate (after warm-up)
    min_learning_rate: float = 1e-5  # floor of the cosine decay
    warmup_steps: int = 200  # linear learning-rate warm-up
    weight_decay: float = 0.0  # AdamW decoupled weight decay
    grad_clip: float = 5.0  # max global gradient norm (0 = off)
    kl_schedule: str = "monotonic"  # monotonic, cyclical or constant
    kl_weight: float = 0.5  # beta: the KL weight reached by the schedule
    kl_warmup_epochs: float = 5.0  # monotonic: epochs from 0 to beta
    kl_cycles: int = 4  # cyclical: number of cycles over the run
    kl_ramp_fraction: float = 0.5  # cyclical: share of each cycle spent ramping up
    free_bits: float = 0.05  # nats per latent dimension not penalized (posterior-collapse guard)
    kl_target: float = 0.0  # nats per molecule held by a controller that sets the KL weight each step, at most kl_weight (0 = the schedule)
    kl_start_weight: float = 1e-3  # the controller's first KL weight; continuing a model trained with it, give its last
    # weight, or the KL runs far above the target for the hundreds of steps the controller takes to climb back
    mmd_weight: float = 0.0  # weight of the MMD between each batch's latent points and prior draws (InfoVAE / WAE; 0 = off)
    word_dropout: float = 0.0  # chance a decoder input token is replaced by <unk>
    property_weight: float = 1.0  # weight of the property-head loss (models with property_names)
    patience: int = 5  # early stopping: epochs without validation improvement
    max_minutes: float = 0.0  # wall-clock budget for training; the epoch in progress ends early (0 = none)
    eval_samples: int = 500  # prior samples per epoch for validity / uniqueness / novelty / FCD / SA / QED / filters
    eval_reference: str = "validation"  # per-epoch FCD against: validation (held-out molecules), moses (MOSES test set) or a SMILES file
    select_by: str = "val_loss"  # the epoch kept as model.pt and watched by early stopping: val_loss (the training objective), val_neg_elbo or fcd
    eval_reconstruct: int = 500  # held-out molecules decoded greedily per epoch
    seed: int = 0  # seeds batch order, noise and evaluation samples
    init: str = ""  # start from this checkpoint's weights, vocabulary and prior ("pretrained" / "pretrained-lead" = a shipped model)
    new_symbols: bool = True  # with init: SELFIES symbols of the data the starting model lacks join its vocabulary and are learned (false: those rows are rejected)
    device: str = "auto"  # auto, cpu, cuda or cuda:N
    precision: str = "auto"  # auto (fp16 autocast on CUDA, bf16 on a CPU with bf16 units, else fp32), fp32, fp16 or bf16
    num_threads: int = 0  # CPU threads for torch (0 = torch's default)


@dataclass
class TrainResult:
    history: list[dict[str, float]]  # one dict of metrics per completed epoch
    best_epoch: int
    best_val_loss: float
    stop_reason: str  # completed | early_stopping | time_limit | interrupted
    epochs_completed: int
    train_seconds: float
    molecules_per_second: float
    final_state: dict[str, Any] = field(default_factory=dict, repr=False)


def kl_weight(step: int, config: TrainConfig, total_steps: int, steps_per_epoch: int) -> float:
    """KL weight at an optimizer step under the configured schedule.

    >>> c = TrainConfig(kl_weight=1.0, kl_warmup_epochs=2)
    >>> [kl_weight(s, c, total_steps=40, steps_per_epoch=10) for s in (0, 10, 20, 30)]
    [0.0, 0.5, 1.0, 1.0]
    >>> c = TrainConfig(kl_schedule="cyclical", kl_weight=1.0, kl_cycles=2, kl_ramp_fraction=0.5)
    >>> [kl_weight(s, c, total_steps=40, steps_per_epoch=10) for s in (0, 5, 10, 19, 20)]
    [0.0, 0.5, 1.0, 1.0, 0.0]
    """
    beta = config.kl_weight
    if config.kl_schedule == "constant":
        return beta
    if config.kl_schedule == "monotonic":
        warmup = config.kl_warmup_epochs * steps_per_epoch
        return beta if warmup <= 0 else beta * min(1.0, step / warmup)
    if config.kl_schedule == "cyclical":
        cycle = max(total_steps / max(config.kl_cycles, 1), 1.0)
        position = (step % cycle) / cycle
        return beta * min(1.0, position / config.kl_ramp_fraction) if config.kl_ramp_fraction > 0 else beta
    raise ValueError(f"kl_schedule must be monotonic, cyclical or constant, got {config.kl_schedule!r}")


_KL_CONTROL_GAIN = 0.02  # log KL weight moves by at most this per step
_KL_CONTROL_FLOOR = 1e-4


def control_kl_weight(beta: float, kl: float, config: TrainConfig) -> float:
    """The next KL weight of the controller that holds the KL at ``config.kl_target`` nats: raised
    while the batch KL is above the target, lowered while below, within [1e-4, kl_weight].

    >>> c = TrainConfig(kl_target=20.0, kl_weight=1.0)
    >>> control_kl_weight(0.1, 40.0, c) > 0.1 > control_kl_weight(0.1, 10.0, c)
    True
    >>> control_kl_weight(1.0, 400.0, c)
    1.0
    """
    error = max(-1.0, min(1.0, (kl - config.kl_target) / config.kl_target))
    return min(config.kl_weight, max(_KL_CONTROL_FLOOR, beta * math.exp(_KL_CONTROL_GAIN * error)))


def _lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    floor = config.min_learning_rate / config.learning_rate

    def factor(step: int) -> float:
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress = min(1.0, (step - config.warmup_steps) / max(total_steps - config.warmup_steps, 1))
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def _epoch_batches(data: TokenizedSet, config: TrainConfig, epoch: int, rank: int = 0, world: int = 1) -> list[torch.Tensor]:
    # The batch order of an epoch depends only on (seed, epoch): a resumed run sees the same order.
    generator = torch.Generator().manual_seed(config.seed * 1_000_003 + epoch)
    batches = length_bucketed_batches(data.lengths, config.batch_size, generator)
    usable = len(batches) - len(batches) % world if world > 1 else len(batches)
    return batches[rank:usable:world]


def fit(
    model: MolVAE,
    vocab: Vocabulary,
    train: TokenizedSet,
    valid: TokenizedSet,
    config: TrainConfig,
    *,
    max_length: int,
    training_smiles: set[str] | None = None,
    tracker: Tracker | None = None,
    save: Callable[[str, dict[str, Any]], None] | None = None,
    resume_state: dict[str, Any] | None = None,
    stop: threading.Event | None = None,
    rank: int = 0,
    world_size: int = 1,
    fcd_reference: tuple[Any, Any] | None = None,
    canonical_samples: bool = True,
    sample_ring_sizes: Container[int] | None = None,
) -> TrainResult:
    """Train ``model`` (already on its device) and return the history and outcome.

    ``save(kind, train_state)`` is called with ``kind`` "last" after every epoch (and on a stop
    request) and "best" when validation loss improves; ``train_state`` is everything
    :func:`fit` needs to continue exactly (pass it back as ``resume_state``). ``training_smiles``
    (canonical) is the reference for novelty. With ``world_size > 1`` the model is expected to
    be wrapped for DistributedDataParallel by the caller; batches are sharded by ``rank``.
    ``fcd_reference`` (ChemNet mean, covariance) adds the FCD of each epoch's prior samples, which
    are drawn as ``molvae sample`` draws them (only canonical decodes with ``canonical_samples``,
    only ring sizes of ``sample_ring_sizes`` when given).
    """
    tracker = tracker or NullTracker()
    stop = stop or threading.Event()
    core: MolVAE = model.module if hasattr(model, "module") else model  # type: ignore[assignment]
    device = next(core.parameters()).device
    if config.num_threads and device.type == "cpu":
        torch.set_num_threads(config.num_threads)
    autocast_dtype = resolve_precision(config.precision, device)
    if rank == 0:
        log.info("precision: %s%s", str(autocast_dtype or torch.float32).removeprefix("torch."),
                 " autocast (train.precision = auto)" if autocast_dtype and config.precision == "auto" else "")
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype == torch.float16)
    steps_per_epoch = len(_epoch_batches(train, config, 0, rank, world_size))
    if steps_per_epoch == 0:
        raise ValueError(f"no training batches: {len(train)} molecules for {world_size} process(es)")
    total_steps = steps_per_epoch * config.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_lambda(config, total_steps))

    if config.select_by not in _SELECTORS:
        raise ValueError(f"train.select_by must be one of {', '.join(_SELECTORS)}, got {config.select_by!r}")
    if config.select_by == "fcd" and rank == 0 and (fcd_reference is None or not config.eval_samples):
        raise ValueError("train.select_by = 'fcd' needs per-epoch prior samples (train.eval_samples > 0) and an FCD reference")
    state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "best_val_loss": math.inf, "best_epoch": -1,
                             "bad_epochs": 0, "history": [], "train_seconds": 0.0, "molecules_seen": 0,
                             "beta": min(config.kl_weight, max(config.kl_start_weight, _KL_CONTROL_FLOOR))}
    if resume_state is not None:
        optimizer.load_state_dict(resume_state["optimizer"])
        scheduler.load_state_dict(resume_state["scheduler"])
        scaler.load_state_dict(resume_state["scaler"])
        state.update({k: resume_state[k] for k in state if k in resume_state})
        log.info("resuming at epoch %d, batch %d (step %d)", state["epoch"], state["batch"], state["step"])

    def train_state() -> dict[str, Any]:
        snapshot = dict(state)
        snapshot.update(optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                        scaler=scaler.state_dict(), torch_rng=torch.get_rng_state())
        if device.type == "cuda":
            snapshot["cuda_rng"] = torch.cuda.get_rng_state(device)
        return snapshot

    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):  # seed locally; the caller's RNG state is untouched
        if resume_state is not None:
            torch.set_rng_state(resume_state["torch_rng"])
            if device.type == "cuda" and "cuda_rng" in resume_state:
                torch.cuda.set_rng_state(resume_state["cuda_rng"], device)
        else:
            torch.manual_seed(config.seed + rank)
        stop_reason = "completed"
        deadline = time.perf_counter() + 60 * config.max_minutes if config.max_minutes > 0 else math.inf
        while state["epoch"] < config.epochs:
            epoch = state["epoch"]
            started = time.perf_counter()
            sums = _train_epoch(model, train, config, epoch, state, optimizer, scheduler, scaler, autocast_dtype,
                                steps_per_epoch, total_steps, stop, rank, world_size, deadline)
            state["train_seconds"] += time.perf_counter() - started
            if stop.is_set():
                if save and rank == 0:
                    save("last", train_state())
                stop_reason = "interrupted"
                break
            metrics = {f"train_{k}": v for k, v in sums.items()}
            metrics["epoch_seconds"] = time.perf_counter() - started
            metrics["learning_rate"] = scheduler.get_last_lr()[0]
            samples: list[str | None] = []
            if rank == 0:
                epoch_metrics, samples = evaluate_epoch(core, vocab, valid, config, max_length, epoch, training_smiles,
                                                        autocast_dtype, fcd_reference, exemplar_pool=train,
                                                        canonical=canonical_samples, ring_sizes=sample_ring_sizes)
                metrics.update(epoch_metrics)
            state["epoch"], state["batch"] = epoch + 1, 0
            watched = metrics.get(_SELECTORS[config.select_by], math.inf) if rank == 0 else math.inf
            improved = rank == 0 and math.isfinite(watched) and watched < state["best_val_loss"] - 1e-4
            if world_size > 1:
                improved = _broadcast_flag(improved, device)
            if improved:
                state["best_val_loss"], state["best_epoch"], state["bad_epochs"] = watched, epoch, 0
            else:
                state["bad_epochs"] += 1
            state["history"].append({"epoch": float(epoch), **metrics})
            if rank == 0:
                tracker.log_metrics(metrics, step=epoch)
                if samples:
                    tracker.log_molecule_grid([s for s in samples if s][:24], f"epoch_grids/epoch_{epoch + 1:03d}.png")
                _log_epoch(epoch, metrics)
                if save:
                    snapshot = train_state()
                    save("last", snapshot)
                    if improved:
                        save("best", snapshot)
            if state["bad_epochs"] >= config.patience:
                stop_reason = "early_stopping"
                log.info("early stopping: no improvement of %s for %d epochs", config.select_by, config.patience)
                break
            if time.perf_counter() >= deadline and state["epoch"] < config.epochs:
                stop_reason = "time_limit"
                log.info("time limit of %.1f minutes reached after %d epochs", config.max_minutes, state["epoch"])
                break
        final = train_state()
    seconds = state["train_seconds"]
    return TrainResult(state["history"], state["best_epoch"], state["best_val_loss"], stop_reason, state["epoch"],
                       seconds, state["molecules_seen"] / seconds if seconds else 0.0, final)


# select_by -> the per-epoch metric it minimizes
_SELECTORS = {"val_loss": "val_loss", "val_neg_elbo": "val_neg_elbo", "fcd": "sample_fcd"}


def _broadcast_flag(flag: bool, device: torch.device) -> bool:
    import torch.distributed as dist

    tensor = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.broadcast(tensor, src=0)
    return bool(tensor.item())


def _train_epoch(model, train, config, epoch, state, optimizer, scheduler, scaler, autocast_dtype,
                 steps_per_epoch, total_steps, stop, rank, world_size, deadline=math.inf) -> dict[str, float]:
    core = model.module if hasattr(model, "module") else model
    device = next(core.parameters()).device
    model.train()
    batches = _epoch_batches(train, config, epoch, rank, world_size)
    sums = {"loss": 0.0, "reconstruction": 0.0, "kl": 0.0, "token_accuracy": 0.0, "kl_weight": 0.0}
    if config.mmd_weight > 0:
        sums["mmd"] = 0.0
    counted = 0
    bar = tqdm(total=len(batches), initial=state["batch"], desc=f"epoch {epoch + 1}/{config.epochs}",
               unit="batch", disable=None if rank == 0 else True, leave=False)
    # no terminal to draw the bar on (a run in the background, logging to a file): a log line instead
    progress = _ProgressLog(epoch, config.epochs, len(batches), state["batch"]) if rank == 0 and bar.disable else None
    for index in batches[state["batch"]:]:
        tokens, lengths = train.batch(index, device)
        labels = train.labels[index].to(device) if train.labels is not None else None
        beta = state["beta"] if config.kl_target > 0 else kl_weight(state["step"], config, total_steps, steps_per_epoch)
        with autocast(device, autocast_dtype):
            output = model(tokens, lengths, word_dropout=config.word_dropout)
        terms = vae_loss(output, tokens, beta, config.free_bits, labels, config.property_weight)
        if config.mmd_weight > 0:
            reference = core.sample_latent(len(index))  # (B, Z) draws from the prior
            mmd = mmd_to_samples(output.z.float(), reference.float())
            terms.loss = terms.loss + config.mmd_weight * mmd
            sums["mmd"] += mmd.item()
        if not torch.isfinite(terms.loss):
            raise TrainingDiverged(
                f"loss became {terms.loss.item()} at epoch {epoch + 1}, step {state['step']} "
                f"(reconstruction {terms.reconstruction.mean().item():.3g}, KL {terms.kl.mean().item():.3g}); "
                "the last good checkpoint is kept. Try a lower learning_rate or precision = 'fp32'."
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(terms.loss).backward()
        if config.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        if config.kl_target > 0:
            state["beta"] = control_kl_weight(beta, terms.kl.mean().item(), config)
        state["step"] += 1
        state["batch"] += 1
        state["molecules_seen"] += len(index) * world_size
        sums["loss"] += terms.loss.item()
        sums["reconstruction"] += terms.reconstruction.mean().item()
        sums["kl"] += terms.kl.mean().item()
        sums["token_accuracy"] += (terms.correct_tokens / terms.n_tokens).item()
        sums["kl_weight"] += beta
        counted += 1
        bar.update(1)
        bar.set_postfix(loss=f"{terms.loss.item():.2f}", kl=f"{terms.kl.mean().item():.1f}", refresh=False)
        if progress is not None:
            progress.update(state["batch"], len(index) * world_size, sums["loss"] / counted, sums["kl"] / counted)
        if stop.is_set() or time.perf_counter() >= deadline:
            break
    bar.close()
    return {k: v / max(counted, 1) for k, v in sums.items()}


class _ProgressLog:
    """Progress of a training epoch as a log line every ``every`` seconds: batches done, molecules
    per second, the epoch's mean loss and KL so far, and the time the epoch still needs."""

    every = 60.0

    def __init__(self, epoch: int, epochs: int, total: int, done: int) -> None:
        self.epoch, self.epochs, self.total = epoch, epochs, total
        self.start = self.last = time.perf_counter()
        self.first, self.molecules = done, 0

    def update(self, done: int, molecules: int, loss: float, kl: float) -> None:
        self.molecules += molecules
        now = time.perf_counter()
        if now - self.last < self.every:
            return
        self.last = now
        seconds_per_batch = (now - self.start) / (done - self.first)
        log.info("epoch %d/%d: batch %d/%d (%.0f%%), %.0f molecules/s, loss %.2f, KL %.1f; %.0f min left in this epoch",
                 self.epoch + 1, self.epochs, done, self.total, 100 * done / self.total,
                 self.molecules / (now - self.start), loss, kl, (self.total - done) * seconds_per_batch / 60)


@torch.no_grad()
def posteriors(model: MolVAE, data: TokenizedSet, index: torch.Tensor, batch_size: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
    """Encoder posteriors (mu, logvar) (N, Z) of the molecules ``index`` of ``data``, in that order."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    mus, logvars = [], []
    for start in range(0, len(index), batch_size):
        tokens, lengths = data.batch(index[start : start + batch_size], device)
        mu, logvar = model.encode(tokens, lengths)
        mus.append(mu.float())
        logvars.append(logvar.float())
    model.train(was_training)
    empty = torch.empty(0, model.config.latent_dim, device=device)
    return torch.cat(mus) if mus else empty, torch.cat(logvars) if logvars else empty


def fit_exemplars(model: MolVAE, data: TokenizedSet, seed: int = 0) -> int:
    """Fit ``model``'s exemplar prior (if it has one) to the posteriors of ``model.config.exemplars``
    random molecules of ``data`` (its training set); returns how many."""
    if model.exemplars is None:
        return 0
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(data), generator=generator)[: model.config.exemplars].sort().values
    model.exemplars.fit(*posteriors(model, data, index))
    return len(index)


def _draw_latents(model: MolVAE, n: int, generator: torch.Generator, pool: TokenizedSet | None) -> torch.Tensor:
    """What prior sampling of the model being trained decodes: for a model with an exemplar prior,
    posteriors of ``n`` random molecules of ``pool`` (the training set), as the finished model will
    sample; otherwise its trained prior."""
    if model.exemplars is None or pool is None or not len(pool):
        return model.sample_latent(n, generator)
    index = torch.randint(len(pool), (n,), generator=generator, device=generator.device).cpu()
    mu, logvar = posteriors(model, pool, index)
    return ExemplarPrior.draw(mu, torch.exp(0.5 * logvar), n, model.config.exemplar_spread, generator)


@torch.no_grad()
def evaluate_epoch(model: MolVAE, vocab: Vocabulary, valid: TokenizedSet, config: TrainConfig, max_length: int,
                   epoch: int, training_smiles: set[str] | None, autocast_dtype: torch.dtype | None = None,
                   fcd_reference: tuple[Any, Any] | None = None,
                   exemplar_pool: TokenizedSet | None = None,
                   canonical: bool = True,
                   ring_sizes: Container[int] | None = None) -> tuple[dict[str, float], list[str | None]]:
    """Validation loss terms at the full KL weight, token accuracy, exact greedy reconstruction of
    held-out molecules, active latent units, and the quality of ``config.eval_samples`` prior samples
    (drawn as the finished model will draw them: from the posteriors of molecules of
    ``exemplar_pool`` for a model with an exemplar prior, keeping only canonical decodes with
    ``canonical`` and only molecules whose ring sizes are in ``ring_sizes`` when given):
    validity / uniqueness / novelty, FCD against ``fcd_reference``, mean SA and
    QED, the MOSES filter pass rate, the share of decodes that were canonical strings. Returns the
    metrics and the samples."""
    from molvae.sample import decode_latents, draw_samples

    device = next(model.parameters()).device
    model.eval()
    totals = {"reconstruction": 0.0, "kl": 0.0, "property_mse": 0.0}
    correct = n_tokens = 0
    kl_dims = torch.zeros(model.config.latent_dim, device=device)
    mus = []
    generator = torch.Generator(device=device).manual_seed(config.seed + 7919 * (epoch + 1))
    batches = length_bucketed_batches(valid.lengths, config.batch_size, generator, shuffle=False)
    for index in batches:
        tokens, lengths = valid.batch(index, device)
        labels = valid.labels[index].to(device) if valid.labels is not None else None
        with autocast(device, autocast_dtype):
            mu, logvar = model.encode(tokens, lengths)
            z = model.reparameterize(mu, logvar, generator)
            logits = model.decode_logits(z, tokens[:, :-1])
            props = model.property_head(mu) if model.property_head is not None else None
            kl = model.kl(mu, logvar, z) if model.prior is not None else None
        terms = vae_loss(VAEOutput(logits, mu, logvar, z, props, kl), tokens, 1.0, 0.0, labels)
        totals["reconstruction"] += terms.reconstruction.sum().item()
        totals["kl"] += terms.kl.sum().item()
        totals["property_mse"] += terms.property_loss.item() * len(index)
        kl_dims += terms.kl_per_dim * len(index)
        correct += terms.correct_tokens.item()
        n_tokens += terms.n_tokens.item()
        mus.append(mu.float())
    n = max(len(valid), 1)
    metrics = {
        "val_reconstruction": totals["reconstruction"] / n,
        "val_kl": totals["kl"] / n,
        "val_token_accuracy": correct / max(n_tokens, 1),
    }
    # the training objective on held-out molecules (at the full KL weight): with a property head, its term too
    metrics["val_loss"] = metrics["val_reconstruction"] + config.kl_weight * metrics["val_kl"]
    metrics["val_neg_elbo"] = metrics["val_reconstruction"] + metrics["val_kl"]
    if model.property_head is not None:
        metrics["val_property_mse"] = totals["property_mse"] / n
        metrics["val_loss"] += config.property_weight * metrics["val_property_mse"]
    kl_dims = (kl_dims / n).cpu()
    mu_all = torch.cat(mus) if mus else torch.zeros(1, model.config.latent_dim, device=device)
    metrics["active_units"] = float((mu_all.var(dim=0) > 0.01).sum()) if len(mu_all) > 1 else 0.0
    metrics["kl_dim_min"] = kl_dims.min().item()
    metrics["kl_dim_median"] = kl_dims.median().item()
    metrics["kl_dim_max"] = kl_dims.max().item()

    loaded = LoadedModel(model, vocab, max_length, {})
    held_out = min(config.eval_reconstruct, len(valid))
    if held_out:
        index = torch.arange(held_out)
        tokens, lengths = valid.batch(index, device)
        mu, _ = model.encode(tokens, lengths)
        decoded = decode_latents(loaded, mu, temperature=0.0, workers=1)
        metrics["val_exact_reconstruction"] = sum(d == s for d, s in zip(decoded, valid.smiles[:held_out])) / held_out
    samples: list[str | None] = []
    if config.eval_samples:
        generator = torch.Generator(device=device).manual_seed(config.seed + epoch)
        drawn = draw_samples(loaded, lambda count: _draw_latents(model, count, generator, exemplar_pool),
                             config.eval_samples, 1.0, generator=generator, canonical=canonical,
                             ring_sizes=ring_sizes, workers=1, progress=False)
        samples = drawn.smiles
        metrics["sample_canonical"] = drawn.canonical_rate
        metrics["sample_validity"] = validity(samples)
        metrics["sample_uniqueness"] = uniqueness(samples)
        if training_smiles is not None:
            metrics["sample_novelty"] = novelty(samples, training_smiles)
        metrics.update(generation_quality(samples, fcd_reference))
    model.train()
    return metrics, samples


def _log_epoch(epoch: int, m: dict[str, float]) -> None:
    parts = [f"epoch {epoch + 1}", f"loss {m['train_loss']:.3f}", f"val {m['val_loss']:.3f}",
             f"recon {m['val_reconstruction']:.2f}", f"KL {m['val_kl']:.2f}", f"acc {m['val_token_accuracy']:.3f}",
             f"AU {m['active_units']:.0f}"]
    for key, label in (("val_exact_reconstruction", "exact"), ("sample_validity", "valid"),
                       ("sample_uniqueness", "unique"), ("sample_novelty", "novel"), ("sample_canonical", "canonical"),
                       ("sample_fcd", "FCD"),
                       ("sample_sa", "SA"), ("sample_qed", "QED"), ("sample_filters", "filters")):
        if key in m:
            parts.append(f"{label} {m[key]:.3f}")
    parts.append(f"{m['epoch_seconds']:.0f}s")
    log.info(" | ".join(parts))
