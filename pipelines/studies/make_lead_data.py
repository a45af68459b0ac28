r"""Build the training file of the shipped model: a random subset of the MOSES training set plus the
JT-VAE authors' ZINC validation molecules, so that one model reads both MOSES-like molecules and the
charged, larger ZINC leads of the constrained-optimization benchmark.

The benchmark's test molecules are NOT removed here: they are removed after standardization by the
training run itself (``data.exclude``), so that the same standardization decides what matches.

    molvae fetch-moses
    python pipelines/studies/make_lead_data.py --moses data/moses/train.csv.gz \
        --zinc ../shared/data/zinc/zinc_valid_24k.txt --n-moses 600000 --out data/lead/moses_zinc.csv.gz
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--moses", default="data/moses/train.csv.gz", help="MOSES training CSV (molvae fetch-moses)")
    parser.add_argument("--zinc", default="../shared/data/zinc/zinc_valid_24k.txt", help="one SMILES per line")
    parser.add_argument("--n-moses", type=int, default=600000, help="MOSES molecules drawn at random (0 = all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="data/lead/moses_zinc.csv.gz")
    args = parser.parse_args(argv)

    import pandas as pd

    for path in (args.moses, args.zinc):
        if not Path(path).is_file():
            print(f"error: {path}: no such file" + (" (run `molvae fetch-moses` first)" if path == args.moses else ""),
                  file=sys.stderr)
            return 2
    if args.n_moses < 0:
        print("error: --n-moses must be >= 0", file=sys.stderr)
        return 2
    moses = pd.read_csv(args.moses)
    if "SMILES" not in moses.columns:
        print(f"error: {args.moses}: no SMILES column (columns: {list(moses.columns)})", file=sys.stderr)
        return 2
    moses = moses.loc[moses.get("SPLIT", pd.Series("train", index=moses.index)) == "train", "SMILES"]
    if args.n_moses and args.n_moses < len(moses):
        moses = moses.sample(n=args.n_moses, random_state=args.seed)
    zinc = [line.split()[0] for line in Path(args.zinc).read_text().splitlines() if line.strip()]
    table = pd.concat([pd.DataFrame({"smiles": moses.to_numpy(), "source": "moses_train"}),
                       pd.DataFrame({"smiles": zinc, "source": "zinc_valid_24k"})], ignore_index=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(out, index=False)
    print(f"{out}: {len(moses):,} MOSES + {len(zinc):,} ZINC = {len(table):,} rows")
    return 0


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
