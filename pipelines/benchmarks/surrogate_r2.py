#!/usr/bin/env python
"""How well the property predictors that `molvae optimize` follows read properties from z, on
molecules the model never trained on: held-out R^2 and MAE per property.

Two surrogates are scored on the same held-out molecules (encoded, mu), against RDKit's value:
the model's joint property head, when it has one, and the ensemble `molvae optimize` fits when the
head does not cover an objective (MLPs on the encodings of ``--ensemble-molecules`` of the
training molecules the checkpoint carries, the optimizer's own code and settings).

    molvae fetch-moses
    python pipelines/benchmarks/surrogate_r2.py --input data/moses/test.csv.gz -n 5000 --out runs/surrogate_r2.json

Prints one row per surrogate and property; writes the figures as JSON.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads sleep

import argparse
import json
import sys
from pathlib import Path

PROPERTIES = "qed,plogp_raw,logp,sa"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", help="checkpoint (default: the shipped lead model)")
    parser.add_argument("--input", required=True, help="held-out molecules: CSV / SMILES file (gzip too)")
    parser.add_argument("-n", type=int, default=5000, help="first N molecules of --input (default 5000)")
    parser.add_argument("--properties", default=PROPERTIES, help=f"comma-separated (default {PROPERTIES})")
    parser.add_argument("--ensemble-molecules", type=int, default=2000,
                        help="training molecules the ensemble is fitted on (default 2000: optimize's default)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--out", help="JSON file for the figures")
    args = parser.parse_args(argv)
    names = [p.strip() for p in args.properties.split(",") if p.strip()]

    from molvae.chem import PROPERTIES as RDKIT
    from molvae.chem import property_rows

    unknown = [p for p in names if p not in RDKIT]
    if not names or unknown or args.n < 10 or args.ensemble_molecules < 10:
        print(f"error: --properties must name RDKit properties ({', '.join(RDKIT)}), got {unknown or names}; "
              "-n and --ensemble-molecules at least 10", file=sys.stderr)
        return 2
    if not Path(args.input).is_file():
        print(f"error: {args.input}: no such file", file=sys.stderr)
        return 2

    import torch

    from molvae.checkpoint import PRETRAINED_LEAD, load_model
    from molvae.data import read_smiles_table
    from molvae.objectives import parse_objectives
    from molvae.metrics import r2_and_mae
    from molvae.optimize import OptimizeConfig, build_surrogate
    from molvae.sample import encode_smiles
    from molvae.trainset import surrogate_molecules

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model or PRETRAINED_LEAD, "cpu")
    table, column = read_smiles_table(args.input, "")
    held_out = [s for s in table[column].head(args.n).tolist() if isinstance(s, str)]
    encoded = encode_smiles(loaded, held_out)
    truth = torch.tensor(property_rows(encoded.smiles, names), dtype=torch.float32)  # (N, P)
    keep = torch.isfinite(truth).all(dim=1)
    z, truth = encoded.mu[keep], truth[keep]
    print(f"{len(z)} held-out molecules encoded (of {len(held_out)} read from {args.input})", file=sys.stderr)

    objectives = parse_objectives(",".join(f"{p}:max" for p in names))
    results: dict[str, dict] = {}
    heads = list(loaded.model.config.property_names)
    if set(names) <= set(heads):
        with torch.no_grad():
            predicted = loaded.model.predict_properties(z)  # (N, len(heads))
        columns = [heads.index(p) for p in names]
        results["head"] = {p: r2_and_mae(truth[:, i], predicted[:, c]) for i, (p, c) in enumerate(zip(names, columns))}
    training = surrogate_molecules(loaded)
    if training:
        config = OptimizeConfig(surrogate_molecules=args.ensemble_molecules)
        ensemble, info = build_surrogate(loaded, objectives, "ensemble", training, config=config)
        with torch.no_grad():
            predicted = ensemble.members(z).mean(dim=0)  # (N, P)
        results[f"ensemble ({int(info['train_molecules'])} molecules)"] = {
            p: r2_and_mae(truth[:, i], predicted[:, i]) for i, p in enumerate(names)}
    print(f"{'surrogate':<28} {'property':<10} {'R2':>7} {'MAE':>8}")
    for surrogate, per_property in results.items():
        for name, (r2, mae) in per_property.items():
            print(f"{surrogate:<28} {name:<10} {r2:7.3f} {mae:8.3f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"model": str(args.model or PRETRAINED_LEAD), "input": args.input,
                                              "molecules": len(z), "results": {
                                                  s: {p: {"r2": r, "mae": m} for p, (r, m) in v.items()}
                                                  for s, v in results.items()}}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
