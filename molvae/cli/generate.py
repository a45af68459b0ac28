"""``molvae sample``, ``merge`` and ``evaluate``: molecules from a model's prior, and their metrics."""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from molvae.cli.common import (BATCH, COUNT, SEED, SPREAD, TEMPERATURE, Number, load, model_args, print_table,
                               read_smiles)
from molvae.errors import UserError

log = logging.getLogger("molvae")


def cmd_sample(args: argparse.Namespace) -> int:
    from molvae.experiment import write_samples

    shard, shards = _shard(args.shard)
    device = args.device
    if shards > 1 and device in ("auto", "cuda") and "LOCAL_RANK" in os.environ:
        device = f"cuda:{os.environ['LOCAL_RANK']}"  # one GPU per torchrun process
    model = load(args, device)
    n = args.n // shards + (1 if shard < args.n % shards else 0)
    if n < 1:
        raise UserError(f"-n {args.n} leaves shard {shard} of {shards} without molecules")
    # Distinct, reproducible seeds per shard: the union of the shards is one large sample.
    seed = args.seed + 1_000_003 * shard
    table = model.sample(n, seed=seed, temperature=args.temperature, top_k=args.top_k, spread=args.spread,
                         canonical=args.canonical, seen_rings=args.seen_rings, novel=args.novel, train=args.train,
                         batch_size=args.batch_size)
    out = Path(args.out)
    if shards > 1:
        out = out.with_name(f"{out.stem}.shard{shard:04d}-of-{shards:04d}{out.suffix}")
    out.parent.mkdir(parents=True, exist_ok=True)
    files = write_samples(table, out.parent, prefix=out.stem)
    print_table(f"{n} samples" + (f" (shard {shard + 1} of {shards}, seed {seed})" if shards > 1 else ""),
                table.attrs["metrics"])
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
    if "valid" not in merged.columns or "smiles" not in merged.columns:
        raise UserError("merge reads the CSVs `molvae sample` writes (columns smiles and valid)")
    valid = merged[merged["valid"].astype(bool)]
    unique = valid.drop_duplicates("smiles")
    unique.to_csv(args.out, index=False)
    print(f"{len(merged)} molecules from {len(tables)} files: {len(valid)} valid, {len(unique)} unique "
          f"({len(valid) - len(unique)} duplicates removed); wrote {args.out}")
    return 0


def _evaluation_cache(args: argparse.Namespace) -> Path:
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


def _moses_metrics(args: argparse.Namespace, smiles: list[str]) -> dict[str, float]:
    from molvae.moses import load_moses, moses_metrics, moses_reference_stats
    from molvae.trainset import read_training_set

    cache = _evaluation_cache(args)
    if cache.is_file():
        log.info("MOSES metrics of these exact files were computed before: %s", cache)
        return json.loads(cache.read_text())
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
    return metrics


def cmd_evaluate(args: argparse.Namespace) -> int:
    from molvae.api import evaluate, score_objective

    smiles = read_smiles(args.samples, args.smiles_column)
    if args.objective:
        if not args.out:
            raise UserError("--objective writes every molecule with its score: give --out OUT.csv")
        table = score_objective(args.objective, smiles)
        table.to_csv(args.out, index=False)
        scored = table["score"].notna()
        print(f"{args.samples}: {int(scored.sum())} of {len(table)} molecules scored on {args.objective} "
              f"(best {table['score'].max():.4g}); {int((~scored).sum())} without a score, with a reason; "
              f"wrote {args.out}")
        return 0
    metrics = _moses_metrics(args, smiles) if args.moses else evaluate(smiles, args.train)
    print_table(f"{args.samples}: {len(smiles)} molecules", metrics)
    if args.out:
        Path(args.out).write_text(json.dumps(metrics, indent=2) + "\n")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sample", help="sample molecules from the prior; writes CSV, SDF and a PNG grid",
                       description="Sample from the model's prior, decode to canonical SMILES and write OUT (CSV "
                                   "with validity, novelty and RDKit properties), OUT.sdf and OUT.png.")
    model_args(p)
    p.add_argument("-n", type=COUNT, default=1000, help="number of molecules (default 1000)")
    p.add_argument("--out", required=True, help="output CSV path")
    p.add_argument("--temperature", type=TEMPERATURE, default=1.0, help="softmax temperature; 0 = greedy (default 1.0)")
    p.add_argument("--top-k", type=Number(int, 0, 10**6), default=0,
                   help="sample among the k likeliest tokens (default 0: all)")
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
    p.add_argument("--spread", type=SPREAD, help="widen the exemplar posteriors z is drawn from by this factor: "
                                                 "higher = more novel, less like the training data (default: the "
                                                 "model's)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--batch-size", type=BATCH, default=1024)
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
    p.add_argument("--out", help="also write the metrics as JSON; with --objective, the scored molecules as CSV")
    p.add_argument("--objective", help="instead of the set's metrics, score every molecule on this objective "
                                       "(e.g. 'qed:max', 'pmo:celecoxib_rediscovery', a module:function scorer) "
                                       "and write them to --out with a score column (empty, with a reason, where a "
                                       "molecule cannot be scored)")
    p.add_argument("--moses", metavar="DIR", help="full MOSES metric set (FCD, SNN, Frag, Scaf, Filters, ...) "
                                                  "against the sets in DIR (from `molvae fetch-moses`)")
    p.set_defaults(func=cmd_evaluate)
