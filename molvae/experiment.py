"""End-to-end recipes built from the library: the training run behind ``molvae train``.

This layer owns the run's output folder; the pieces it calls (data, train, sample, metrics)
return values and know nothing about files.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from molvae.checkpoint import (
    PRETRAINED,
    PRETRAINED_LEAD,
    CheckpointError,
    load_model,
    model_from_payload,
    read_checkpoint,
    save_checkpoint,
)
from molvae.chem import PROPERTIES, REPORT_PROPERTIES, property_table, ring_sizes_in
from molvae.config import RunConfig, SampleConfig, to_toml
from molvae.data import DataError, PreparedData, TokenizedSet, prepare, read_smiles_table, tokenize
from molvae.device import resolve_device
from molvae.distributed import DistributedContext, init_from_environment, wrap_model
from molvae.errors import UserError
from molvae.metrics import canonical_valid, evaluate_samples
from molvae.model import MolVAE
from molvae.report import loss_curves_png, molecule_grid_png, sample_table, write_sdf
from molvae.sample import sample_prior
from molvae.tracking import NullTracker, Tracker, environment_tags
from molvae.training import TrainConfig, TrainResult, fit, fit_exemplars
from molvae.trainset import TrainingSetIndex, training_sample
from molvae.vocab import Vocabulary

__all__ = ["TrainRunSummary", "property_labels", "split_indices", "train_run"]

log = logging.getLogger(__name__)

BEST, LAST = "model.pt", "last.pt"


@dataclass
class TrainRunSummary:
    out_dir: Path
    result: TrainResult
    data_counts: dict[str, int]
    sample_metrics: dict[str, float]
    files: dict[str, Path]


def split_indices(n: int, validation_fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded train/validation split; at least one molecule on each side when ``n >= 2``.

    >>> train, valid = split_indices(10, 0.2, seed=0)
    >>> len(train), len(valid), sorted(train.tolist() + valid.tolist()) == list(range(10))
    (8, 2, True)
    """
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_valid = min(max(1, round(n * validation_fraction)), n - 1) if n >= 2 else 0
    return order[n_valid:], order[:n_valid]


def property_labels(prepared: PreparedData, names: list[str], workers: int = 0) -> torch.Tensor | None:
    """Labels (N, P) for the kept molecules: a numeric column of the input file when it has one of
    that name, else the RDKit property of the same name (computed in ``workers`` processes, 0 = all
    cores); NaN where a value is missing."""
    if not names:
        return None
    for name in names:
        if name not in prepared.label_columns and name not in PROPERTIES:
            raise DataError(f"property {name!r} is neither a column kept from the data "
                            f"(data.property_columns) nor an RDKit property ({', '.join(PROPERTIES)})")
    computed = [name for name in names if name not in prepared.label_columns]
    rdkit_values = torch.empty(len(prepared.kept), 0)
    if computed:
        rows = property_table(prepared.kept["smiles"].tolist(), computed, workers, "computing property labels")
        rdkit_values = torch.tensor(rows, dtype=torch.float32).reshape(len(prepared.kept), len(computed))
    columns = [torch.tensor(prepared.kept[name].to_numpy(dtype=float), dtype=torch.float32)
               if name in prepared.label_columns else rdkit_values[:, computed.index(name)] for name in names]
    return torch.stack(columns, dim=1)


def _initial_model(config: RunConfig) -> tuple[MolVAE, Vocabulary, int, tuple[torch.Tensor, frozenset[int]]]:
    """The model, vocabulary, generation length and training set (:func:`_carried`) of ``train.init`` (a
    checkpoint, or "pretrained" / "pretrained-lead" for the shipped sampling / lead model): fine-tuning
    keeps its architecture, vocabulary and learned prior, and the molecules it was trained on stay
    "not novel"."""
    shipped = {"pretrained": PRETRAINED, "pretrained-lead": PRETRAINED_LEAD}
    path = shipped.get(config.train.init, Path(config.train.init))
    payload = read_checkpoint(path)
    model, vocab = model_from_payload(payload)
    wanted, held = list(config.model.property_names), list(model.config.property_names)
    if wanted and not held:  # a new joint property head on the starting model: its own weights are kept
        with_head = MolVAE(dataclasses.replace(model.config, property_names=wanted,
                                               property_hidden=config.model.property_hidden,
                                               property_layers=config.model.property_layers))
        weights = {k: v for k, v in model.state_dict().items() if not k.startswith("property_")}  # empty buffers
        missing, unexpected = with_head.load_state_dict(weights, strict=False)
        if unexpected or not all(key.startswith("property_") for key in missing):
            raise CheckpointError(f"train.init = {config.train.init!r}: could not add a property head "
                                  f"(unexpected {unexpected}, missing {missing})")
        model = with_head
        log.info("fine-tuning adds a property head for %s", ", ".join(wanted))
    elif wanted not in ([], held):
        raise CheckpointError(f"train.init = {config.train.init!r}: fine-tuning keeps that model's property head "
                              f"({held}), not {wanted} (only a model without a head can be given a new one)")
    log.info("fine-tuning %s (%s symbols, prior %s): [model] settings come from it", path, len(vocab.symbols),
             model.config.prior)
    return model, vocab, int(payload["max_length"]), _carried(payload)


def _learn_new_symbols(model: MolVAE, vocab: Vocabulary, prepared: PreparedData) -> Vocabulary:
    """``vocab`` with the SELFIES symbols of the data it lacks appended, and ``model`` grown to
    match (:meth:`MolVAE.grow_vocabulary`): fine-tuning then learns them instead of rejecting
    the molecules that hold them."""
    new = sorted({symbol for selfies in prepared.kept["selfies"] for symbol in vocab.unknown_symbols(selfies)})
    if not new:
        return vocab
    extended = vocab.extended(new)
    model.grow_vocabulary(len(extended))
    log.info("fine-tuning learns %d symbol(s) the starting model lacks: %s (train.new_symbols = false rejects "
             "their molecules instead)", len(new), " ".join(new))
    return extended


def _carried(payload: dict[str, Any]) -> tuple[torch.Tensor, frozenset[int]]:
    """What a checkpoint carries of its training set: the molecules' hashes and their ring sizes
    (empty for older checkpoints)."""
    hashes = payload["meta"].get("training_hashes")
    return (hashes if isinstance(hashes, torch.Tensor) else torch.empty(0, dtype=torch.int64),
            frozenset(int(size) for size in payload["meta"].get("ring_sizes", ())))


def fcd_reference(config: TrainConfig, validation_smiles: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """ChemNet (mean, covariance) that each epoch's prior samples are compared with (FCD), by
    ``train.eval_reference``: ``moses`` (the MOSES test set's shipped statistics), ``validation``
    (the held-out molecules, at most 10,000) or a SMILES file."""
    from molvae.moses import chemnet_moments, moses_test_fcd_reference

    name = config.eval_reference
    if name == "moses":
        return moses_test_fcd_reference()
    if name == "validation":
        smiles = validation_smiles[:10000]
    else:
        table, column = read_smiles_table(name)
        smiles = canonical_valid(table[column].tolist())
    if len(smiles) < 2:
        raise DataError(f"train.eval_reference = {name!r}: fewer than two valid molecules to compare samples with")
    log.info("FCD reference: ChemNet statistics of %d molecules (%s)", len(smiles), name)
    return chemnet_moments(smiles, None)


def _write_json(path: Path, payload: Any) -> Path:
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    return path


def train_run(data_path: str | os.PathLike, config: RunConfig, out_dir: str | os.PathLike, *,
              tracker: Tracker | None = None, resume: bool = False, stop: threading.Event | None = None) -> TrainRunSummary:
    """Prepare data, train, checkpoint, sample from the best model and write every output to ``out_dir``.

    Under torchrun (``WORLD_SIZE > 1``) each process trains on its shard of the batches with
    DistributedDataParallel; only rank 0 writes files, logs and samples.
    """
    tracker = tracker or NullTracker()
    context, device = init_from_environment(resolve_device(config.train.device))
    try:
        return _train_run(data_path, config, Path(out_dir), tracker, resume, stop, context, device)
    finally:
        if context.active:
            torch.distributed.destroy_process_group()


@dataclass
class _Start:
    """The model a run trains and what it carries over: from scratch, from a checkpoint (``train.init``)
    or from this run's last checkpoint (resume)."""

    model: MolVAE
    vocab: Vocabulary
    config: RunConfig  # with a starting model's [model] settings when fine-tuning
    init_length: int = 0  # a starting model's generation length: never shortened
    resume_state: dict[str, Any] | None = None
    earlier_hashes: torch.Tensor = dataclasses.field(default_factory=lambda: torch.empty(0, dtype=torch.int64))
    earlier_rings: frozenset[int] = frozenset()


def _starting_model(prepared: PreparedData, config: RunConfig, out: Path, resume: bool, data_path) -> _Start:
    if resume:
        payload = read_checkpoint(out / LAST)
        if payload["meta"].get("data_sha256") != prepared.source_hash:
            raise CheckpointError(f"{out / LAST} was trained on different data than {data_path}")
        model, vocab = model_from_payload(payload)
        if payload["train_state"] is None:
            raise CheckpointError(f"{out / LAST} holds no training state to resume from")
        # a resumed fine-tuning run keeps its starting model's molecules
        return _Start(model, vocab, config, 0, payload["train_state"], *_carried(payload))
    if config.train.init:
        model, vocab, init_length, (hashes, rings) = _initial_model(config)
        if config.train.new_symbols:
            vocab = _learn_new_symbols(model, vocab, prepared)
        config = dataclasses.replace(config, model=dataclasses.replace(model.config, vocab_size=0))
        start = _Start(model, vocab, config, init_length, None, hashes, rings)
    else:
        vocab = Vocabulary.build(prepared.kept["selfies"])
        start = _Start(MolVAE(dataclasses.replace(config.model, vocab_size=len(vocab))), vocab, config)
    if start.model.exemplars is not None:
        start.model.exemplars.resize(0)  # fitted to this run's training molecules when it ends (not a starting model's)
    return start


def _datasets(prepared: PreparedData, start: _Start, data_path) -> tuple[TokenizedSet, torch.Tensor, TokenizedSet,
                                                                        TokenizedSet]:
    """The tokenized molecules, the training indices and the training and validation sets, with
    property labels standardized by the model's statistics (set from the training labels unless resuming)."""
    config, model = start.config, start.model
    labels = property_labels(prepared, list(model.config.property_names), config.data.workers)
    data = tokenize(prepared.kept["selfies"].tolist(), prepared.kept["smiles"].tolist(), start.vocab, labels)
    train_index, valid_index = split_indices(len(data), config.data.validation_fraction, config.train.seed)
    if config.data.max_molecules:
        train_index = train_index[: config.data.max_molecules]
    train_set, valid_set = data.subset(train_index), data.subset(valid_index)
    if len(valid_set) == 0:
        raise DataError(f"{data_path}: {len(data)} usable molecule(s) is too few to hold any out for validation")
    if labels is not None and start.resume_state is None:
        known = train_set.labels
        model.property_mean.copy_(torch.nanmean(known, dim=0))
        model.property_std.copy_(torch.sqrt(torch.nanmean((known - model.property_mean) ** 2, dim=0)).clamp(min=1e-6))
    if train_set.labels is not None:
        train_set.labels = (train_set.labels - model.property_mean) / model.property_std
        valid_set.labels = (valid_set.labels - model.property_mean) / model.property_std
    return data, train_index, train_set, valid_set


def _checkpoint_meta(start: _Start, prepared: PreparedData, data: TokenizedSet, train_index: torch.Tensor, data_path,
                     tracker: Tracker) -> dict[str, Any]:
    """What every checkpoint of the run says about itself; novelty and surrogates read its training
    hashes, ring sizes and sample instead of the training file."""
    config, smiles = start.config, prepared.kept["smiles"]
    hashes = torch.cat([start.earlier_hashes, TrainingSetIndex.from_smiles(smiles).hashes])
    return {
        "data_path": str(data_path),
        "data_sha256": prepared.source_hash,
        "data_counts": prepared.counts(),
        "config": config.to_dict(),
        "n_parameters": sum(p.numel() for p in start.model.parameters()),
        "mlflow_run_id": tracker.run_id or "",
        **environment_tags(),
        "training_hashes": TrainingSetIndex(hashes).hashes,
        "ring_sizes": sorted(start.earlier_rings.union(ring_sizes_in(smiles.tolist(), config.data.workers))),
        "training_sample": training_sample([data.smiles[i] for i in train_index.tolist()], seed=config.train.seed),
    }


def _record_inputs(out: Path, tracker: Tracker, start: _Start, prepared: PreparedData, data_path, sizes: dict[str, int],
                   n_params: int, world_size: int, main: bool) -> None:
    """The run's configuration, vocabulary and data report: as files (rank 0) and in the tracker."""
    config, counts, resume = start.config, prepared.counts(), start.resume_state is not None
    if main:
        (out / "config.toml").write_text(to_toml(config))
        _write_json(out / "vocab.json", start.vocab.to_dict())
        _write_json(out / "data_report.json", {"counts": counts, "smiles_column": prepared.smiles_column,
                                               "label_columns": prepared.label_columns,
                                               "sha256": prepared.source_hash, **sizes})
    tracker.set_tags(environment_tags())
    if not resume:
        tracker.log_params({**config.to_dict(), "data": {**dataclasses.asdict(config.data), "path": str(data_path),
                                                          "sha256": prepared.source_hash},
                            "model": {**config.to_dict()["model"], "vocab_size": len(start.vocab),
                                      "n_parameters": n_params},
                            "world_size": world_size})
    tracker.log_metrics({f"data_{k}": v for k, v in counts.items()})
    if not resume:
        tracker.log_dataset(data_path, prepared.source_hash, counts)
    for name in ("config.toml", "vocab.json", "data_report.json", "rejected.csv"):
        tracker.log_artifact(out / name, "data" if name != "config.toml" else None)


def _train_run(data_path, config: RunConfig, out: Path, tracker: Tracker, resume: bool,
               stop: threading.Event | None, context: DistributedContext, device: torch.device) -> TrainRunSummary:
    main = context.is_main
    if not main:
        tracker = NullTracker()
        context.barrier()  # let rank 0 clean the data and fill the cache first
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    files: dict[str, Path] = {}

    prepared = prepare(data_path, config.data)
    if main:
        context.barrier()
    start = _starting_model(prepared, config, out, resume, data_path)
    config, model, vocab = start.config, start.model, start.vocab
    if resume or (config.train.init and not config.train.new_symbols):  # a vocabulary not built (or extended) on
        # this data: rows it cannot read are rejected
        prepared = prepared.restrict_to_vocabulary(vocab)
    counts = prepared.counts()
    if main:
        prepared.rejected.to_csv(out / "rejected.csv", index=False)
        files["rejected"] = out / "rejected.csv"
        log.info("data: %s", ", ".join(f"{k}={v}" for k, v in counts.items()))

    data, train_index, train_set, valid_set = _datasets(prepared, start, data_path)
    longest = int(data.lengths.max())
    max_length = max(start.init_length, longest + max(4, int(0.1 * longest)))
    model.to(device)
    meta = _checkpoint_meta(start, prepared, data, train_index, data_path, tracker)
    _record_inputs(out, tracker, start, prepared, data_path, {"train_molecules": len(train_set),
                                                              "validation_molecules": len(valid_set)},
                   meta["n_parameters"], context.world_size, main)
    if main:
        log.info("model: %s parameters, vocabulary %d symbols, %d train / %d validation molecules, device %s%s",
                 f"{meta['n_parameters']:,}", len(vocab.symbols), len(train_set), len(valid_set), device,
                 f", {context.world_size} processes" if context.active else "")

    def save(kind: str, train_state: dict[str, Any]) -> None:
        save_checkpoint(out / (BEST if kind == "best" else LAST), model, vocab, max_length, meta,
                        train_state if kind == "last" else None)

    training_smiles = set(prepared.kept["smiles"])
    reference = fcd_reference(config.train, valid_set.smiles) if main and config.train.eval_samples else None
    result = fit(wrap_model(model, context, device), vocab, train_set, valid_set, config.train,
                 max_length=max_length, training_smiles=training_smiles, tracker=tracker, save=save,
                 resume_state=start.resume_state, stop=stop, rank=context.rank, world_size=context.world_size,
                 fcd_reference=reference, canonical_samples=config.sample.canonical,
                 sample_ring_sizes=frozenset(meta["ring_sizes"]) if config.sample.seen_rings else None)
    if not main:
        return TrainRunSummary(out, result, counts, {}, files)
    sample_metrics = _finish(out, config, model, vocab, max_length, train_set, training_smiles, result, tracker,
                             device, files)
    _write_json(out / "metrics.json", {"training": {**_training_summary(result),
                                                    "total_seconds": time.perf_counter() - started},
                                       "data": counts, "samples": sample_metrics})
    files["metrics"] = out / "metrics.json"
    for key in ("history", "loss_curves", "metrics", "samples", "sdf", "grid"):
        if key in files:
            tracker.log_artifact(files[key])
    if (out / BEST).exists():
        tracker.log_artifact(out / BEST, "checkpoint")
        if config.tracking.log_model and result.stop_reason != "interrupted":
            tracker.log_pyfunc_model(out / BEST)
    return TrainRunSummary(out, result, counts, sample_metrics, files)


def _training_summary(result: TrainResult) -> dict[str, Any]:
    return {"stop_reason": result.stop_reason, "epochs": result.epochs_completed, "best_epoch": result.best_epoch + 1,
            "train_seconds": result.train_seconds, "train_molecules_per_second": result.molecules_per_second}


def _finish(out: Path, config: RunConfig, model: MolVAE, vocab: Vocabulary, max_length: int, train_set: TokenizedSet,
            training_smiles: set[str], result: TrainResult, tracker: Tracker, device: torch.device,
            files: dict[str, Path]) -> dict[str, float]:
    """After training: the best model's exemplar prior, the history and loss curves, and molecules
    sampled from it (their metrics are returned; the files written are added to ``files``)."""
    finished = result.stop_reason != "interrupted" and (out / BEST).exists()
    if finished and model.config.exemplars:
        payload = read_checkpoint(out / BEST)
        best, _ = model_from_payload(payload)
        n = fit_exemplars(best.to(device), train_set, config.train.seed)
        save_checkpoint(out / BEST, best, vocab, max_length, payload["meta"])
        log.info("exemplar prior: posteriors of %d training molecules (spread %.2f) stored in %s", n,
                 best.config.exemplar_spread, out / BEST)
    pd.DataFrame(result.history).to_csv(out / "history.csv", index=False)
    files.update(history=out / "history.csv", checkpoint=out / BEST, last=out / LAST)
    if result.history:
        files["loss_curves"] = loss_curves_png(result.history, out / "loss_curves.png")
    tracker.log_metrics({"train_seconds": result.train_seconds,
                         "train_molecules_per_second": result.molecules_per_second,
                         "best_epoch": result.best_epoch + 1})
    sample_metrics: dict[str, float] = {}
    if finished and config.sample.n > 0:
        sample_metrics, sample_files = sample_and_report(load_model(out / BEST, device), config, out, training_smiles)
        files.update(sample_files)
        tracker.log_metrics({f"final_{k}": v for k, v in sample_metrics.items()})
    if result.stop_reason == "interrupted" and (out / BEST).exists():
        exemplars = bool(model.config.exemplars)
        log.warning("stopped before the end: %s (the best epoch so far) has no %sfinal samples; `molvae train ... "
                    "--resume` continues the run%s", out / BEST, "exemplar prior and " * exemplars,
                    f", `molvae fit-prior --model {out / BEST} --out FILE` gives it exemplars now" * exemplars)
    return sample_metrics


def sample_molecules(loaded, config: SampleConfig, training_smiles: Container[str] | None
                     ) -> tuple[pd.DataFrame, dict[str, float]]:
    """Sample ``config.n`` molecules: their table (one row each: SMILES, validity, novelty, RDKit
    properties) and the metrics of the set."""
    s = config
    if s.novel and training_smiles is None:
        raise UserError("sample.novel (--novel) needs the training set, and neither the checkpoint nor --train "
                        "gives it")
    drawn = sample_prior(loaded, s.n, s.temperature, s.top_k, s.seed, s.batch_size, canonical=s.canonical,
                         exclude=training_smiles if s.novel else None,
                         ring_sizes=loaded.ring_sizes if s.seen_rings else None, max_draws=s.max_draws)
    smiles = drawn.smiles
    table = sample_table(smiles, training_smiles)
    valid = table[table["valid"]]  # property means of every sample, from the table's columns
    metrics = evaluate_samples(smiles, training_smiles,
                               properties={name: valid[name].tolist() for name in REPORT_PROPERTIES})
    metrics["canonical_rate"] = drawn.canonical_rate  # share of all decodes that were canonical strings
    if s.novel:
        metrics["known_left_out"] = drawn.excluded  # canonical decodes that were training molecules
    if s.seen_rings and loaded.ring_sizes is not None:
        metrics["odd_rings_left_out"] = drawn.odd_rings  # decodes with a ring size the training molecules lack
    return table, metrics


def write_samples(table: pd.DataFrame, out: Path, prefix: str = "samples", grid_size: int = 48) -> dict[str, Path]:
    """Write a sample table as CSV, its valid molecules as SDF and the first distinct ones as a PNG grid."""
    files = {"samples": out / f"{prefix}.csv", "sdf": out / f"{prefix}.sdf", "grid": out / f"{prefix}.png"}
    table.to_csv(files["samples"], index=False)
    write_sdf(table[table["valid"]], files["sdf"])
    shown = table[table["valid"]].drop_duplicates("smiles").head(grid_size)
    legends = [f"QED {q:.2f}  SA {a:.1f}" for q, a in zip(shown["qed"], shown["sa"])]
    molecule_grid_png(shown["smiles"].tolist(), files["grid"], legends)
    return files


def sample_and_report(loaded, config: RunConfig, out: Path, training_smiles: Container[str] | None,
                      prefix: str = "samples") -> tuple[dict[str, float], dict[str, Path]]:
    """Sample ``config.sample.n`` molecules; write CSV, SDF and a PNG grid; return metrics and files."""
    table, metrics = sample_molecules(loaded, config.sample, training_smiles)
    return metrics, write_samples(table, out, prefix, config.sample.grid_size)
