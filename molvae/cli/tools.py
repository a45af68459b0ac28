"""``molvae bench`` and ``fetch-moses``: measuring this machine, and the MOSES data sets."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from molvae.cli.common import BATCH, COUNT, STEPS, THREADS, load


def cmd_bench(args: argparse.Namespace) -> int:
    import torch

    from molvae import BUNDLED_DATA
    from molvae.bench import run_benchmark
    from molvae.config import load_config
    from molvae.device import resolve_device

    device = resolve_device(args.device)
    config = load_config(args.config)
    loaded = load(args).loaded if args.model else None
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.profile:
        from molvae.bench import format_profile, run_profile

        rows, peak, precision = run_profile(args.data or str(BUNDLED_DATA), config.model, device=device,
                                            batch_size=args.batch_size, loaded=loaded, precision=args.precision)
        step = rows[-1]
        print(f"\n{device}, {torch.get_num_threads()} threads, {precision}; {precision} matmul peak {peak:.1f} GFLOP/s; "
              f"batch of {step['molecules']} molecules")
        print(format_profile(rows, peak))
        print(f"training: {step['molecules'] / step['ms'] * 1e3:.0f} molecules/s, {step['gflops_per_s']:.1f} GFLOP/s "
              f"= {step['gflops_per_s'] / peak:.1%} of the matmul peak")
        if args.out:
            Path(args.out).write_text(json.dumps({"precision": precision, "peak_gflops": peak, "parts": rows},
                                                 indent=2) + "\n")
        return 0
    results, machine = run_benchmark(args.data or str(BUNDLED_DATA), config.model, device=device,
                                     batch_size=args.batch_size, train_steps=args.steps, n_sample=args.n_sample,
                                     precision=args.precision, reference=not args.no_reference, loaded=loaded)
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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="throughput of training, sampling and encoding beside a plain reference",
                       description="Measure training (molecules/s, peak memory), prior sampling (latents to canonical "
                                   "SMILES) and encoding throughput on this machine, with a plain implementation of "
                                   "the same architecture (padded batches, fp32, full-length sampling, "
                                   "single-process decoding) and the ratio.")
    p.add_argument("--config", default=None, help="TOML whose [model] section sets the architecture")
    p.add_argument("--model", help="trained checkpoint (realistic sampling lengths); else a fresh model")
    p.set_defaults(shipped="sampling")
    p.add_argument("--data", help="SMILES file (default: the bundled MOSES sample)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", help="auto, fp32, fp16 or bf16")
    p.add_argument("--batch-size", type=BATCH, default=256)
    p.add_argument("--steps", type=STEPS, default=30, help="timed training steps (default 30)")
    p.add_argument("--n-sample", type=COUNT, default=5000, help="molecules sampled (default 5000)")
    p.add_argument("--threads", type=THREADS, default=0, help="torch CPU threads (default 0: torch's choice)")
    p.add_argument("--no-reference", action="store_true", help="skip the plain reference implementation")
    p.add_argument("--profile", action="store_true",
                   help="instead: where one training step's time goes (encoder, decoder recurrence, output layer "
                        "and loss, prior and head, optimizer, data), each part's GFLOP/s beside this machine's "
                        "matmul peak")
    p.add_argument("--out", help="also write the results as JSON")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("fetch-moses", help="download the MOSES train/test sets (from the molsets wheel) into data/moses",
                       description="Download the molsets wheel from the package registry with pip and extract the "
                                   "MOSES train, test and scaffold-test CSVs (gzip) into DEST. No molsets code is "
                                   "imported; files already present are kept.")
    p.add_argument("--dest", default="data/moses", help="destination folder (default data/moses)")
    p.set_defaults(func=cmd_fetch_moses)
