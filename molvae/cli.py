"""``molvae <command>``: argument parsing, logging set-up, run lifecycle. Logic lives in the library."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from molvae import BUNDLED_DATA
from molvae.errors import UserError

if TYPE_CHECKING:  # the CLI imports the library lazily, inside each command
    from molvae.data import DataConfig

log = logging.getLogger("molvae")

EPILOG = """examples:
  molvae train --data my.csv --config pipelines/recipes/quickstart.toml --out runs/exp1
  molvae sample --model runs/exp1/model.pt -n 10000 --out samples.csv
  molvae evaluate samples.csv --train my.csv
  mlflow ui --backend-store-uri sqlite:///mlflow.db
"""




# --- helpers ----------------------------------------------------------------------------------

def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("molvae")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@contextlib.contextmanager
def _graceful_stop() -> Iterator[threading.Event]:
    """First Ctrl-C / SIGTERM asks the run to save and stop; a second one aborts at once."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("received %s: saving a checkpoint and stopping (again to abort)", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _tracker(config, run_name: str | None = None):
    """An MLflow run when tracking is on; under torchrun only rank 0 records one."""
    from molvae.tracking import MlflowTracker, NullTracker

    is_main = os.environ.get("RANK", "0") == "0"
    return MlflowTracker(config.tracking, run_name) if config.tracking.enabled and is_main else NullTracker()


def shipped_model(kind: str) -> str:
    """The path of the model shipped for ``kind`` ("sampling" or "lead"): what a command given no
    --model uses."""
    from molvae.checkpoint import PRETRAINED, PRETRAINED_LEAD

    shipped = PRETRAINED_LEAD if kind == "lead" else PRETRAINED
    if not shipped.exists():
        raise UserError("no --model given and no pretrained model is installed")
    log.info("no --model given: using the shipped %s model %s (see MODEL_CARD.md beside it)", kind, shipped)
    return str(shipped)


def _load(args: argparse.Namespace, device: str):
    """``--model``, or the shipped model the command defaults to (``model_args``)."""
    from molvae.checkpoint import load_model
    from molvae.device import resolve_device

    return load_model(args.model or shipped_model(args.shipped), resolve_device(device))


def _read_smiles(path: str, column: str = "") -> list[str]:
    from molvae.data import read_smiles_table

    table, smiles_column = read_smiles_table(path, column)
    return table[smiles_column].tolist()


def _print_table(title: str, metrics: dict[str, float]) -> None:
    width = max(len(k) for k in metrics) if metrics else 0
    print(f"\n{title}")
    print("-" * (width + 14))
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:>10.4f}" if isinstance(value, float) else f"{key:<{width}}  {value:>10}")
    print()


# --- commands ---------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from molvae.config import load_config
    from molvae.experiment import train_run

    overrides = list(args.set or [])
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.epochs is not None:
        overrides.append(f"train.epochs={args.epochs}")
    if args.no_track:
        overrides.append("tracking.enabled=false")
    if args.tracking_uri:
        overrides.append(f'tracking.uri="{args.tracking_uri}"')
    if args.register:
        overrides.append(f'tracking.register="{args.register}"')
    config = load_config(args.config, overrides)
    data = args.data or _default_data(args.config)
    with _graceful_stop() as stop, _tracker(config, Path(args.out).name) as tracker:
        summary = train_run(data, config, args.out, tracker=tracker, resume=args.resume, stop=stop)
    result = summary.result
    if os.environ.get("RANK", "0") != "0":
        return 0
    _print_table("data", {k: v for k, v in summary.data_counts.items()})
    _print_table("training", {"stop_reason": result.stop_reason, "epochs": result.epochs_completed,
                              "best_epoch": result.best_epoch + 1, "train_seconds": result.train_seconds,
                              "train_molecules_per_second": result.molecules_per_second})
    if summary.sample_metrics:
        _print_table(f"{config.sample.n} prior samples from the best model", summary.sample_metrics)
    print(f"outputs in {summary.out_dir}/: " + ", ".join(sorted(p.name for p in summary.files.values())))
    if tracker.run_id:
        print(f"MLflow run {tracker.run_id} in {config.tracking.resolved_uri()} "
              f"(mlflow ui --backend-store-uri {config.tracking.resolved_uri()})")
        if getattr(tracker, "model_uri", None):
            registered = f", registered as {config.tracking.register}" if config.tracking.register else ""
            print(f"MLflow model {tracker.model_uri}{registered}")
    return 130 if result.stop_reason == "interrupted" else 0


def _default_data(config_path: str | None) -> str:
    """The bundled MOSES sample, used when ``--data`` is not given."""
    if BUNDLED_DATA.exists():
        return str(BUNDLED_DATA)
    raise UserError("no --data given and the bundled data set is not available")


def cmd_sample(args: argparse.Namespace) -> int:
    from molvae.config import RunConfig, SampleConfig
    from molvae.experiment import sample_and_report

    shard, shards = _shard(args.shard)
    device = args.device
    if shards > 1 and device in ("auto", "cuda") and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"  # one GPU per torchrun process
    loaded = _load(args, device)
    if args.spread is not None:
        if args.spread <= 0:
            raise UserError(f"--spread must be > 0, got {args.spread}")
        if loaded.model.exemplars is None or not loaded.model.exemplars.fitted:
            raise UserError(f"{args.model or 'the pretrained model'} samples from its trained prior, not from "
                            "exemplars: --spread does not apply (give it one with `molvae fit-prior`)")
        loaded.model.exemplars.spread = args.spread
    n = args.n // shards + (1 if shard < args.n % shards else 0)
    # Distinct, reproducible seeds per shard: the union of the shards is one large sample.
    seed = args.seed + 1_000_003 * shard
    config = RunConfig(sample=SampleConfig(n=n, temperature=args.temperature, top_k=args.top_k, seed=seed,
                                           batch_size=args.batch_size, canonical=args.canonical,
                                           seen_rings=args.seen_rings, novel=args.novel))
    out = Path(args.out)
    if shards > 1:
        out = out.with_name(f"{out.stem}.shard{shard:04d}-of-{shards:04d}{out.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    from molvae.trainset import novelty_reference

    training = novelty_reference(loaded, args.train)
    metrics, files = sample_and_report(loaded, config, out.parent, training, prefix=out.stem)
    _print_table(f"{n} samples" + (f" (shard {shard + 1} of {shards}, seed {seed})" if shards > 1 else ""), metrics)
    print("wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def _shard(text: str | None) -> tuple[int, int]:
    """``I/N`` from --shard, else torchrun's RANK/WORLD_SIZE, else a single shard (0, 1)."""
    if text:
        index, sep, total = text.partition("/")
        if not sep or not index.isdigit() or not total.isdigit() or not 0 <= int(index) < int(total):
            raise UserError(f"--shard must look like I/N with 0 <= I < N, got {text!r}")
        return int(index), int(total)
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def cmd_merge(args: argparse.Namespace) -> int:
    import pandas as pd

    tables = [pd.read_csv(path) for path in args.parts]
    merged = pd.concat(tables, ignore_index=True)
    valid = merged[merged["valid"].astype(bool)]
    unique = valid.drop_duplicates("smiles")
    unique.to_csv(args.out, index=False)
    print(f"{len(merged)} molecules from {len(tables)} files: {len(valid)} valid, {len(unique)} unique "
          f"({len(valid) - len(unique)} duplicates removed); wrote {args.out}")
    return 0


def _evaluation_cache(args: argparse.Namespace) -> Path | None:
    """Where the MOSES metric table of these exact inputs is kept: keyed by the SHA-256 of the samples
    file, of the MOSES files used and of ``--train``, and by the molvae, RDKit and fcd versions."""
    import hashlib
    import importlib.metadata

    from rdkit import rdBase

    from molvae import __version__

    digest = hashlib.sha256(f"{__version__}|{rdBase.rdkitVersion}|{importlib.metadata.version('fcd')}|"
                            f"{args.smiles_column}".encode())
    moses = Path(args.moses)
    files = [Path(args.samples), *(moses / name for name in ("train.csv.gz", "test.csv.gz", "test_scaffolds.csv.gz",
                                                             "test_stats.npz", "test_scaffolds_stats.npz"))]
    files += [Path(args.train)] if args.train else []
    for path in files:
        if path.is_file():
            with open(path, "rb") as f:
                digest.update(path.name.encode() + hashlib.file_digest(f, "sha256").digest())
    return Path(".cache") / "molvae" / f"moses-metrics-{digest.hexdigest()[:24]}.json"


def cmd_evaluate(args: argparse.Namespace) -> int:
    from molvae.trainset import read_training_set

    smiles = _read_smiles(args.samples, args.smiles_column)
    cache = _evaluation_cache(args) if args.moses else None
    if cache is not None and cache.is_file():
        log.info("MOSES metrics of these exact files were computed before: %s", cache)
        metrics = json.loads(cache.read_text())
    elif args.moses:
        from molvae.moses import load_moses, moses_metrics, moses_reference_stats

        # MOSES's own reference statistics when fetch-moses put them there, else computed (and cached)
        shipped = {split: moses_reference_stats(Path(args.moses), split) for split in ("test", "test_scaffolds")}
        wanted = [split for split, stats in shipped.items() if stats is None] + ([] if args.train else ["train"])
        splits = load_moses(Path(args.moses), wanted)
        references = {split: shipped[split] if shipped[split] is not None else splits[split] for split in shipped}
        # Novelty against --train when given, else against the MOSES training SMILES as written (MOSES's definition)
        train = read_training_set(args.train) if args.train else frozenset(splits["train"])
        metrics = moses_metrics(smiles, references["test"], references["test_scaffolds"], train)
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(metrics, indent=2) + "\n")
    else:
        from molvae.metrics import evaluate_samples

        metrics = evaluate_samples(smiles, read_training_set(args.train))
    _print_table(f"{args.samples}: {len(smiles)} molecules", metrics)
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def _encoded_frame(encoded, inputs: Sequence[str]):
    import pandas as pd

    kept = pd.DataFrame({"row": [i + 1 for i in encoded.index], "input": [inputs[i] for i in encoded.index],
                         "smiles": encoded.smiles})
    rejected = pd.DataFrame([(i + 1, inputs[i], reason, detail) for i, reason, detail in encoded.rejected],
                            columns=["row", "input", "reason", "detail"])
    return kept, rejected


def _encode_input(args: argparse.Namespace):
    """Load the model and encode the SMILES of ``--input`` (refined by ``--refine`` steps):
    ``(loaded, encoded, kept, rejected)``."""
    from molvae.sample import REFINE_STEPS, encode_smiles

    steps = REFINE_STEPS if args.refine is None else args.refine
    if steps < 0:
        raise UserError(f"--refine must be at least 0, got {steps}")
    loaded = _load(args, args.device)
    inputs = _read_smiles(args.input, args.smiles_column)
    encoded = encode_smiles(loaded, inputs, refine=steps)
    return (loaded, encoded, *_encoded_frame(encoded, inputs))


def _write_rejected(rejected, out: Path) -> None:
    if len(rejected):
        path = out.with_name(out.stem + "_rejected.csv")
        rejected.to_csv(path, index=False)
        log.info("%d input rows could not be encoded; reasons in %s", len(rejected), path)


def cmd_encode(args: argparse.Namespace) -> int:
    import pandas as pd

    _, encoded, kept, rejected = _encode_input(args)
    latent = pd.DataFrame(encoded.mu.numpy(), columns=[f"z{i}" for i in range(encoded.mu.size(1))])
    out = Path(args.out)
    pd.concat([kept, latent], axis=1).to_csv(out, index=False)
    _write_rejected(rejected, out)
    print(f"wrote {len(kept)} latent points ({encoded.mu.size(1)} dimensions) to {out}; {len(rejected)} rejected")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    from molvae.chem import tanimoto, to_mol
    from molvae.sample import decode_beam, decode_latents

    if args.beam < 1:
        raise UserError(f"--beam must be at least 1, got {args.beam}")
    loaded, encoded, kept, rejected = _encode_input(args)
    mu = encoded.mu.to(loaded.device)
    # the decoded list, not the column: pandas >= 3 stores a failed decode (None) as NaN
    decoded = decode_latents(loaded, mu, temperature=0.0) if args.beam == 1 else decode_beam(loaded, mu, args.beam)
    kept["reconstruction"] = decoded
    kept["exact"] = [r is not None and r == s for r, s in zip(decoded, kept["smiles"])]
    kept["tanimoto"] = [tanimoto(to_mol(r), to_mol(s)) if r else 0.0 for r, s in zip(decoded, kept["smiles"])]
    out = Path(args.out)
    kept.to_csv(out, index=False)
    _write_rejected(rejected, out)
    n_inputs = len(kept) + len(rejected)
    print(f"exact reconstruction {kept['exact'].mean() if len(kept) else 0.0:.3f} on {len(kept)} encoded molecules "
          f"({kept['exact'].sum() / max(n_inputs, 1):.3f} of all {n_inputs} inputs, {len(rejected)} rejected); "
          f"mean Tanimoto of decode to input {kept['tanimoto'].mean() if len(kept) else 0.0:.3f}; wrote {out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from molvae.sample import elbo_scores

    loaded = _load(args, args.device)
    inputs = _read_smiles(args.input, args.smiles_column)
    encoded, nll, kl = elbo_scores(loaded, inputs, n_samples=args.samples)
    kept, rejected = _encoded_frame(encoded, inputs)
    kept["reconstruction_nll"] = nll.numpy()
    kept["kl"] = kl.numpy()
    kept["neg_elbo"] = kept["reconstruction_nll"] + kept["kl"]
    out = Path(args.out)
    kept.sort_values("neg_elbo", ascending=False).to_csv(out, index=False)
    _write_rejected(rejected, out)
    print(f"scored {len(kept)} molecules (highest negative ELBO = least like the training data first); wrote {out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from molvae.report import molecule_grid_png
    from molvae.sample import interpolate

    loaded = _load(args, args.device)
    path = interpolate(loaded, args.start, args.end, args.steps, spherical=not args.linear)
    for i, s in enumerate(path):
        print(f"{i}\t{s}")
    molecule_grid_png([s or "" for s in path], args.out, [f"{i}: {s or 'invalid'}" for i, s in enumerate(path)],
                      per_row=len(path))
    print(f"wrote {args.out}")
    return 0


def cmd_around(args: argparse.Namespace) -> int:
    from molvae.report import molecule_grid_png, sample_table
    from molvae.sample import sample_around

    loaded = _load(args, args.device)
    smiles = sample_around(loaded, args.smiles, args.n, args.radius, args.seed)
    table = sample_table(smiles)
    out = Path(args.out)
    table.to_csv(out, index=False)
    unique = table[table["valid"]].drop_duplicates("smiles")
    molecule_grid_png(unique["smiles"].tolist(), out.with_suffix(".png"))
    print(f"{len(unique)} distinct molecules around {args.smiles}; wrote {out} and {out.with_suffix('.png')}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    import pandas as pd
    import torch

    from molvae.chem import PROPERTIES, to_mol
    from molvae.report import scatter_png
    from molvae.sample import encode_smiles

    if args.property not in PROPERTIES:
        raise UserError(f"unknown property {args.property!r}; choose from {', '.join(PROPERTIES)}")
    loaded = _load(args, args.device)
    inputs = _read_smiles(args.data, args.smiles_column)[: args.max]
    encoded = encode_smiles(loaded, inputs)
    if len(encoded.smiles) < 3:
        raise UserError("need at least 3 encodable molecules for a map")
    centred = encoded.mu - encoded.mu.mean(dim=0)
    _, _, v = torch.pca_lowrank(centred, q=2, center=False)
    coords = centred @ v[:, :2]  # (N, 2)
    values = [PROPERTIES[args.property](to_mol(s)) for s in encoded.smiles]
    out = Path(args.out)
    scatter_png(coords[:, 0].tolist(), coords[:, 1].tolist(), values, out,
                f"latent space (PCA of mu), {len(values)} molecules", args.property)
    pd.DataFrame({"smiles": encoded.smiles, "pc1": coords[:, 0].numpy(), "pc2": coords[:, 1].numpy(),
                  args.property: values}).to_csv(out.with_suffix(".csv"), index=False)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


def cmd_fit_prior(args: argparse.Namespace) -> int:
    from molvae.checkpoint import save_checkpoint
    from molvae.model import ModelConfig
    from molvae.prior import fit_exemplar_prior, fit_prior
    from molvae.trainset import surrogate_molecules

    count = ModelConfig.exemplars if args.count is None else args.count
    spread = ModelConfig.exemplar_spread if args.spread is None else args.spread
    if count < 1 or spread <= 0:
        raise UserError(f"--count must be >= 1 and --spread > 0 (got {count} and {spread})")
    loaded = _load(args, "cpu")
    smiles = _read_smiles(args.data, args.smiles_column) if args.data else surrogate_molecules(loaded)
    if not smiles:
        raise UserError("no molecules to fit the prior on: give --data (the model carries no training sample "
                        "and its training file is not found)")
    if args.kind == "exemplars":
        try:
            model = fit_exemplar_prior(loaded, smiles, count=count, spread=spread, seed=args.seed)
        except ValueError as err:
            raise UserError(str(err)) from None
        meta = {**loaded.meta, "prior_fit": {"kind": "exemplars", "exemplars": model.exemplars.means.size(0),
                                             "spread": spread, "data": args.data or "training sample"}}
        save_checkpoint(args.out, model, loaded.vocab, loaded.max_length, meta)
        print(f"exemplar prior: posteriors of {model.exemplars.means.size(0)} molecules, spread {spread}; "
              f"wrote {args.out}")
        return 0
    model, figures = fit_prior(loaded, smiles, steps=args.steps, seed=args.seed)
    meta = {**loaded.meta, "prior_fit": {**figures, "steps": args.steps, "data": args.data or "training sample"}}
    save_checkpoint(args.out, model, loaded.vocab, loaded.max_length, meta)
    print(f"prior fitted on {figures['molecules']:.0f} molecules: held-out log p(z) "
          f"{figures['held_out_log_prob_before']:.1f} -> {figures['held_out_log_prob_after']:.1f} nats; wrote {args.out}")
    return 0


def cmd_fit_head(args: argparse.Namespace) -> int:
    import torch

    from molvae.checkpoint import save_checkpoint
    from molvae.data import standardized_set
    from molvae.head import fit_property_head
    from molvae.trainset import surrogate_molecules

    if args.count < 20 or args.hidden < 1 or args.layers < 1 or args.epochs < 1:
        raise UserError("--count must be >= 20 and --hidden, --layers, --epochs >= 1")
    loaded = _load(args, "cpu")
    names = ([p.strip() for p in args.properties.split(",") if p.strip()] if args.properties
             else list(loaded.model.config.property_names) or ["qed", "plogp_raw", "logp", "sa"])
    smiles = _read_smiles(args.data, args.smiles_column) if args.data else surrogate_molecules(loaded)
    if not smiles:
        raise UserError("no molecules to fit the head on: give --data (the model carries no training sample "
                        "and its training file is not found)")
    if len(smiles) > args.count:
        order = torch.randperm(len(smiles), generator=torch.Generator().manual_seed(args.seed))[:args.count]
        smiles = [smiles[i] for i in order.tolist()]
    try:
        exclude = standardized_set(args.exclude, loaded.standardize_options, args.workers) if args.exclude else set()
        model, figures = fit_property_head(loaded, smiles, names, hidden=args.hidden, layers=args.layers,
                                           epochs=args.epochs, seed=args.seed, workers=args.workers, exclude=exclude,
                                           cache=args.cache)
    except ValueError as err:
        raise UserError(str(err)) from None
    meta = {**loaded.meta, "head_fit": {**figures, "properties": names, "hidden": args.hidden,
                                        "layers": args.layers, "data": args.data or "training sample",
                                        "exclude": args.exclude or ""}}
    save_checkpoint(args.out, model, loaded.vocab, loaded.max_length, meta)
    print(f"property head fitted on {figures['train_molecules']:,.0f} encoded molecules (best epoch "
          f"{figures['best_epoch']:.0f} of {figures['epochs']:.0f}), {figures['validation_molecules']:,.0f} held out; "
          f"dropped: {figures['dropped_not_encoded']:,.0f} not readable by the model, "
          f"{figures['dropped_not_scored']:,.0f} not scored, {figures['dropped_excluded']:,.0f} excluded")
    print(f"{'property':<12} {'R2 before':>10} {'R2 now':>8} {'MAE now':>8}")
    for name in names:
        before = figures.get(f"old_r2_{name}")
        print(f"{name:<12} {'-' if before is None else f'{before:.3f}':>10} {figures[f'val_r2_{name}']:8.3f} "
              f"{figures[f'val_mae_{name}']:8.3f}")
    print(f"wrote {args.out}")
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from molvae.bench import run_benchmark
    from molvae.config import load_config
    from molvae.device import resolve_device

    device = resolve_device(args.device)
    config = load_config(args.config)
    loaded = _load(args, args.device) if args.model else None
    data = args.data or _default_data(None)
    if args.threads:
        torch.set_num_threads(args.threads)
    results, machine = run_benchmark(data, config.model, device=device, batch_size=args.batch_size,
                                     train_steps=args.steps, n_sample=args.n_sample, precision=args.precision,
                                     reference=not args.no_reference, loaded=loaded)
    print("\nmachine: " + ", ".join(f"{k}={v}" for k, v in machine.items()))
    print(f"{'measurement':<40} {'molvae':>12} {'reference':>12} {'ratio':>7}  detail")
    for r in results:
        ref = f"{r.reference:12.1f}" if r.reference else f"{'-':>12}"
        ratio = f"{r.ratio:6.1f}x" if r.ratio else f"{'-':>7}"
        print(f"{r.name:<40} {r.molvae:12.1f} {ref} {ratio}  {r.detail}")
    if args.out:
        rows = [{**dataclasses.asdict(r), "ratio": r.ratio, **machine} for r in results]
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


def cmd_fetch_moses(args: argparse.Namespace) -> int:
    from molvae.moses import fetch_moses

    for name, path in fetch_moses(Path(args.dest)).items():
        print(f"{name}: {path}")
    return 0


# --- parser -----------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="molvae",
        description="Train a SELFIES GRU VAE on your molecules, generate novel valid ones, and steer them "
                    "toward target properties. Every training run is tracked in MLflow.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    def model_args(p: argparse.ArgumentParser, shipped: str = "sampling") -> None:
        """``shipped``: which model shipped with molvae the command uses without --model."""
        p.add_argument("--model", help="checkpoint written by `molvae train` (e.g. runs/exp1/model.pt); default: "
                                       f"the {shipped} model shipped with molvae (molvae/pretrained/MODEL_CARD.md)")
        p.set_defaults(shipped=shipped)
        p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")

    def input_args(p: argparse.ArgumentParser, name: str = "--input") -> None:
        p.add_argument(name, required=True, help="CSV/TSV/.smi file (gzip allowed) with a SMILES column")
        p.add_argument("--smiles-column", default="", help="name of the SMILES column (default: found by name)")

    def refine_arg(p: argparse.ArgumentParser, default: int | None) -> None:
        p.add_argument("--refine", type=int, default=default, metavar="STEPS",
                       help="move each encoding by this many gradient steps toward a point the decoder writes the "
                            "molecule from (0 = the encoder mean; default "
                            + ("10, molvae.sample.REFINE_STEPS" if default is None else str(default)) + ")")

    p = sub.add_parser("train", help="train a model on a SMILES file; samples and evaluates the best model",
                       description="Clean and encode the data, train the VAE with checkpoints (model.pt = best, "
                                   "last.pt = latest), then sample from the best model and write the outputs. "
                                   "Ctrl-C saves and stops; --resume continues exactly where it stopped.")
    p.add_argument("--data", help="CSV/TSV/.smi of SMILES (default: the bundled MOSES sample)")
    p.add_argument("--config", help="TOML run configuration (see pipelines/*.toml)")
    p.add_argument("--out", required=True, help="output folder for checkpoints, samples, plots and reports")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--epochs", type=int, help="shortcut for --set train.epochs=N")
    p.add_argument("--device", help="shortcut for --set train.device=...")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--no-track", action="store_true", help="do not record an MLflow run")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--register", metavar="NAME", help="add the trained model to the MLflow model registry as NAME")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("sample", help="sample molecules from the prior; writes CSV, SDF and a PNG grid",
                       description="Sample from the model's prior, decode to canonical SMILES and write OUT (CSV "
                                   "with validity, novelty and RDKit properties), OUT.sdf and OUT.png.")
    model_args(p)
    p.add_argument("-n", type=int, default=1000, help="number of molecules (default 1000)")
    p.add_argument("--out", required=True, help="output CSV path")
    p.add_argument("--temperature", type=float, default=1.0, help="softmax temperature; 0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=int, default=0, help="sample among the k likeliest tokens (default: all)")
    p.add_argument("--canonical", action=argparse.BooleanOptionalAction, default=True,
                   help="keep only decodes that are canonical SELFIES strings, the form of every training string, "
                        "and draw more until there are N (default); --no-canonical keeps every decode")
    p.add_argument("--seen-rings", action=argparse.BooleanOptionalAction, default=True,
                   help="keep only molecules whose ring sizes all occur in the model's training molecules (no "
                        "8-membered ring from a model of drug-like molecules), drawing more until there are N "
                        "(default, for checkpoints that record their ring sizes); --no-seen-rings keeps any")
    p.add_argument("--novel", action="store_true",
                   help="keep only molecules that are not in the training set (the model's own, or --train), "
                        "drawing more until there are N; lets a lower --spread give molecules closer to the data")
    p.add_argument("--spread", type=float, help="widen the exemplar posteriors z is drawn from by this factor: "
                                                "higher = more novel, less like the training data (default: the model's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--train", help="training file for the novelty flag and --novel (default: the model's own training "
                                   "data)")
    p.add_argument("--shard", help="I/N: produce shard I (0-based) of N with its own seed, writing "
                                   "OUT.shardI-of-N.csv (under torchrun: RANK/WORLD_SIZE); combine with `molvae merge`")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("merge", help="merge sample shards into one file of unique valid molecules",
                       description="Concatenate CSVs written by `molvae sample --shard`, keep the valid molecules "
                                   "and drop duplicates (first occurrence kept); prints the counts.")
    p.add_argument("parts", nargs="+", help="shard CSVs")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_merge)

    p = sub.add_parser("evaluate", help="validity, uniqueness, novelty, diversity and properties of a SMILES file")
    p.add_argument("samples", help="file of generated SMILES (e.g. the CSV from `molvae sample`)")
    p.add_argument("--train", help="training file, for novelty")
    p.add_argument("--smiles-column", default="")
    p.add_argument("--out", help="also write the metrics as JSON")
    p.add_argument("--moses", metavar="DIR", help="full MOSES metric set (FCD, SNN, Frag, Scaf, Filters, ...) "
                                                  "against the sets in DIR (from `molvae fetch-moses`)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("encode", help="latent coordinates (mu) of molecules, as CSV")
    model_args(p, "lead")
    input_args(p)
    p.add_argument("--out", required=True)
    refine_arg(p, 0)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("reconstruct", help="encode and decode molecules; report exact matches and similarity")
    model_args(p, "lead")
    input_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--beam", type=int, default=10,
                   help="decode by beam search of this width, keeping the likeliest canonical decode; "
                        "1 = greedy (default 10)")
    refine_arg(p, None)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("score", help="per-molecule negative ELBO: an out-of-distribution score to sort by")
    model_args(p, "lead")
    input_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=int, default=4, help="draws of z averaged per molecule (default 4)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("interpolate", help="decode the latent path between two molecules into a strip image")
    model_args(p, "lead")
    p.add_argument("--start", required=True, help="SMILES")
    p.add_argument("--end", required=True, help="SMILES")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--linear", action="store_true", help="linear instead of spherical interpolation")
    p.add_argument("--out", default="interpolation.png")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("around", help="sample molecules in the latent neighbourhood of a molecule")
    model_args(p, "lead")
    p.add_argument("--smiles", required=True)
    p.add_argument("-n", type=int, default=24)
    p.add_argument("--radius", type=float, default=0.5, help="standard deviation of the latent noise")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="around.csv")
    p.set_defaults(func=cmd_around)

    p = sub.add_parser("map", help="2-D PCA map of the latent space coloured by a property (PNG + CSV)")
    model_args(p, "lead")
    input_args(p, "--data")
    p.add_argument("--property", default="qed")
    p.add_argument("--max", type=int, default=5000, help="molecules to map (default 5000)")
    p.add_argument("--out", default="latent_map.png")
    p.set_defaults(func=cmd_map)

    p = sub.add_parser("fit-prior", help="fit the sampling prior to where the encoder puts molecules (after training)",
                       description="Give a trained model a sampling prior fitted to where its encoder puts molecules "
                                   "(default: the training sample the checkpoint carries), encoder and decoder "
                                   "frozen. --kind exemplars (what `molvae train` now does itself): sampling draws "
                                   "from the posteriors of --count of those molecules, widened by --spread. --kind "
                                   "flow: a RealNVP prior fitted to draws of those posteriors. Writes a new checkpoint.")
    model_args(p)
    p.add_argument("--kind", choices=("exemplars", "flow"), default="exemplars", help="default: exemplars")
    p.add_argument("--count", type=int,
                   help="exemplars: molecules whose posteriors are kept (default: model.exemplars of `molvae train`)")
    p.add_argument("--spread", type=float,
                   help="exemplars: factor on their posterior standard deviations; higher = more novel, less like "
                        "the data (default: model.exemplar_spread of `molvae train`)")
    p.add_argument("--data", help="SMILES file to draw molecules from (default: the checkpoint's training sample)")
    p.add_argument("--smiles-column", default="", help="name of the SMILES column (default: found by name)")
    p.add_argument("--steps", type=int, default=3000, help="flow: optimizer steps of 1,024 draws (default 3000)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.set_defaults(func=cmd_fit_prior)

    p = sub.add_parser("fit-head", help="refit the property head on many encoded molecules (after training)",
                       description="Give a trained model a property head fitted on the encodings of many molecules "
                                   "(encoder and decoder frozen): their encoder means and RDKit values are computed "
                                   "once, an MLP is trained with a held-out split and early stopping, and the "
                                   "held-out R2 of the old and the new head is printed. `molvae optimize` follows "
                                   "the head for the objectives it covers. Writes a new checkpoint.")
    model_args(p, "lead")
    p.add_argument("--data", help="SMILES file to draw molecules from (default: the checkpoint's training sample; "
                                  "tens of thousands of molecules or more for a good head)")
    p.add_argument("--smiles-column", default="", help="name of the SMILES column (default: found by name)")
    p.add_argument("--count", type=int, default=200000, help="molecules drawn at random from --data (default 200000)")
    p.add_argument("--exclude", help="SMILES file whose molecules (standardized alike) are left out: a test set")
    p.add_argument("--properties", help="comma-separated RDKit properties (default: the model's head, else "
                                        "qed,plogp_raw,logp,sa)")
    p.add_argument("--hidden", type=int, default=256, help="width of the hidden layers (default 256)")
    p.add_argument("--layers", type=int, default=2, help="hidden layers (default 2)")
    p.add_argument("--epochs", type=int, default=60, help="at most this many epochs; the best is kept (default 60)")
    p.add_argument("--workers", type=int, default=0, help="processes standardizing and scoring the molecules "
                                                              "(default: all cores)")
    p.add_argument("--cache", help="file keeping the encodings and property values: a later call with the same "
                                   "model, molecules and properties reuses them (e.g. to try another --hidden)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.set_defaults(func=cmd_fit_head)

    p = sub.add_parser("bench", help="throughput of training, sampling and encoding beside a plain reference",
                       description="Measure training (molecules/s, peak memory), prior sampling (latents to canonical "
                                   "SMILES) and encoding throughput on this machine, with a plain implementation of "
                                   "the same architecture (padded batches, fp32, full-length sampling, "
                                   "single-process decoding) and the ratio.")
    p.add_argument("--config", default=None, help="TOML whose [model] section sets the architecture")
    p.add_argument("--model", help="trained checkpoint (realistic sampling lengths); else a fresh model")
    p.add_argument("--data", help="SMILES file (default: the bundled MOSES sample)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--steps", type=int, default=30, help="timed training steps (default 30)")
    p.add_argument("--n-sample", type=int, default=5000, help="molecules sampled (default 5000)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-reference", action="store_true", help="skip the plain reference implementation")
    p.add_argument("--out", help="also write the results as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("fetch-moses", help="download the MOSES train/test sets (from the molsets wheel) into data/moses",
                       description="Download the molsets wheel from the package registry with pip and extract the "
                                   "MOSES train, test and scaffold-test CSVs (gzip) into DEST. No molsets code is "
                                   "imported; files already present are kept.")
    p.add_argument("--dest", default="data/moses", help="destination folder (default data/moses)")
    p.set_defaults(func=cmd_fetch_moses)

    from molvae.cli_optimize import register as register_optimize  # argparse only: imports nothing heavy

    register_optimize(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from molvae.entry import prepare_process

    prepare_process()  # before torch is imported
    from molvae.errors import USER_ERRORS

    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if args.verbose or os.environ.get("MOLVAE_DEBUG"):
            raise
        print(f"molvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"molvae {args.command}: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
