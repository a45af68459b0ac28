"""Training throughput of molvae beside the MOSES VAE's own training code, in one run on one machine.

The MOSES side is molsets 0.3.1's ``moses/vae`` (model, trainer and collate function, as released),
taken from the molsets wheel that pip downloads into a temporary folder; it is imported here only,
for this comparison, never by molvae. Both sides train on the same molecules with the same batch
size and thread count: MOSES on its character SMILES, molvae on SELFIES in length-bucketed batches.
Each side's figure is molecules per second over ``--steps`` optimizer steps after two warm-up steps.

    python pipelines/benchmarks/moses_vae_throughput.py --threads 2 --out runs/moses_vae_throughput.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
import types
import zipfile
from pathlib import Path

import pandas as pd
import torch

from molvae import BUNDLED_DATA
from molvae.bench import _train_throughput
from molvae.config import load_config
from molvae.data import DataConfig, prepare, tokenize
from molvae.device import resolve_precision
from molvae.entry import run_script
from molvae.errors import DataError, UserError
from molvae.model import MolVAE
from molvae.moses import download_molsets_wheel
from molvae.vocab import Vocabulary

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
# Each size: molvae's recipe, and the MOSES VAE configuration at the same sizes (MOSES's own defaults
# for "moses": a one-direction GRU encoder 256, decoder GRU 512 x 3, latent 128).
SIZES = {
    "cpu": (RECIPES / "moses_cpu.toml", ["--q_bidir", "--q_d_h", "128", "--d_d_h", "256", "--d_n_layers", "1",
                                         "--d_z", "48"]),
    "moses": (RECIPES / "moses.toml", []),
}


def moses_vae_package(folder: Path):
    """molsets 0.3.1's ``moses.vae`` from its wheel, without running ``moses/__init__`` (which
    imports its metrics and their dependencies)."""
    with zipfile.ZipFile(download_molsets_wheel(folder)) as wheel:
        wheel.extractall(folder)
    package = types.ModuleType("moses")
    package.__path__ = [str(folder / "moses")]
    sys.modules["moses"] = package
    import moses.vae

    return moses.vae


def moses_rate(vae, smiles: list[str], extra: list[str], batch_size: int, steps: int) -> float:
    """Molecules per second of the MOSES VAE's own ``_train_epoch`` on ``steps`` batches."""
    from tqdm.auto import tqdm

    config = vae.vae_parser().parse_args(["--n_batch", str(batch_size), "--n_workers", "1", *extra])
    trainer = vae.VAETrainer(config)
    model = vae.VAE(trainer.get_vocabulary(smiles), config)
    loader = trainer.get_dataloader(model, smiles, shuffle=True)
    batches = [batch for _, batch in zip(range(steps + 2), loader)]
    optimizer = torch.optim.Adam(trainer.get_optim_params(model), lr=config.lr_start)
    trainer._train_epoch(model, 0, tqdm(batches[:2], disable=True), 0.0, optimizer)  # warm-up
    timed = batches[2:]
    started = time.perf_counter()
    trainer._train_epoch(model, 0, tqdm(timed, disable=True), 0.0, optimizer)
    return sum(len(batch) for batch in timed) / (time.perf_counter() - started)


def molvae_rate(smiles_file: Path, recipe: Path, batch_size: int, steps: int, precision: str) -> float:
    prepared = prepare(smiles_file, DataConfig(cache_dir="", max_reject_fraction=1.0))
    vocab = Vocabulary.build(prepared.kept["selfies"])
    data = tokenize(prepared.kept["selfies"].tolist(), prepared.kept["smiles"].tolist(), vocab)
    config = load_config(recipe).model
    torch.manual_seed(0)
    model = MolVAE(dataclasses.replace(config, vocab_size=len(vocab)))
    rate, _ = _train_throughput(model, data, batch_size, steps, torch.device("cpu"), precision, bucketed=True)
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=str(BUNDLED_DATA), help="SMILES file (default: the bundled MOSES sample)")
    parser.add_argument("--molecules", type=int, default=20000, help="molecules taken from it (default 20,000)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=20, help="timed optimizer steps per side (default 20)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sizes", default="cpu,moses", help="comma-separated: cpu, moses")
    parser.add_argument("--out", help="also write the rows as JSON")
    args = parser.parse_args()
    if not Path(args.data).is_file():
        raise DataError(f"--data {args.data}: no such file")
    for name in ("molecules", "batch_size", "steps", "threads"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if unknown := set(args.sizes.split(",")) - set(SIZES):
        raise UserError(f"--sizes: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SIZES)}")
    torch.set_num_threads(args.threads)
    table = pd.read_csv(args.data)
    smiles = table[table.columns[0]].astype(str).head(args.molecules).tolist()
    rows = []
    with tempfile.TemporaryDirectory(prefix="molvae-mosesvae-") as tmp:
        vae = moses_vae_package(Path(tmp))
        subset = Path(tmp) / "molecules.csv"
        pd.DataFrame({"smiles": smiles}).to_csv(subset, index=False)
        for size in args.sizes.split(","):
            recipe, extra = SIZES[size]
            reference = moses_rate(vae, smiles, extra, args.batch_size, args.steps)
            for precision in ("fp32", "auto"):
                chosen = str(resolve_precision(precision, torch.device("cpu")) or "float32").removeprefix("torch.")
                rate = molvae_rate(subset, recipe, args.batch_size, args.steps, precision)
                rows.append({"sizes": size, "precision": f"{precision} ({chosen})", "moses_per_s": reference,
                             "molvae_per_s": rate, "ratio": rate / reference, "threads": args.threads})
                print(f"{size:6} molvae {precision:4} ({chosen}): {rate:7.1f} molecules/s, MOSES VAE code "
                      f"{reference:7.1f}: {rate / reference:.2f}x", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main)
