#!/usr/bin/env python
r"""Record in a checkpoint the ring sizes of the molecules it was trained on, which `molvae sample`
keeps its samples to (`sample.seen_rings`). `molvae train` records them itself; this is for
checkpoints trained before it did (the shipped sampling model: every MOSES training molecule).

    python pipelines/studies/record_ring_sizes.py --model molvae/pretrained/model.pt --data data/moses/train.csv.gz \
        --out molvae/pretrained/model.pt

The sizes are read from the molecules of --data as written (a salt's counter-ion adds its rings,
which only widens what is allowed); sizes the checkpoint already records are kept.
"""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="checkpoint to record the ring sizes in")
    parser.add_argument("--data", required=True, help="SMILES file of the model's training molecules")
    parser.add_argument("--out", required=True, help="checkpoint written (may be --model itself)")
    parser.add_argument("--workers", type=int, default=0, help="processes (default: all cores)")
    args = parser.parse_args(argv)

    from molvae.checkpoint import model_from_payload, read_checkpoint, save_checkpoint
    from molvae.chem import ring_sizes_in
    from molvae.data import read_smiles_table

    payload = read_checkpoint(args.model)
    model, vocab = model_from_payload(payload)
    table, column = read_smiles_table(args.data)
    molecules = [s for s in table[column].tolist() if isinstance(s, str)]
    if not molecules:
        print(f"error: {args.data}: no molecule could be read", file=sys.stderr)
        return 2
    sizes = sorted(set(ring_sizes_in(molecules, args.workers)) | set(payload["meta"].get("ring_sizes", ())))
    save_checkpoint(args.out, model, vocab, int(payload["max_length"]), {**payload["meta"], "ring_sizes": sizes})
    print(f"{args.out}: ring sizes {sizes} from {len(molecules):,} molecules of {args.data}")
    return 0


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
