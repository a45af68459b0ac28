"""The default search on an objective nobody tuned for, against BO and random sampling at the same budget.

The objective is one a user might bring as a custom scorer (``module:function``): close to imatinib,
drug-like, logP in 2 to 4 and TPSA at most 100, the geometric mean of the four (``imatinib_like``
below; ``PYTHONPATH=pipelines/benchmarks molvae optimize --objective custom_objective:imatinib_like:max``
optimizes it from the CLI). Each method gets the budget per seed, as ``molvae optimize --method``
runs them side by side. Writes OUT/runs.csv (one row per method and seed) and prints the table of
docs/results.md:

    python pipelines/benchmarks/custom_objective.py --out runs/custom --seeds 0,1,2 --threads 1
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from rdkit import Chem, DataStructs
from rdkit.Chem import QED, Crippen, Descriptors, rdFingerprintGenerator

_MORGAN = rdFingerprintGenerator.GetMorganGenerator(radius=2, fpSize=2048)
IMATINIB = "Cc1ccc(NC(=O)c2ccc(CN3CCN(C)CC3)cc2)cc1Nc1nccc(-c2cccnc2)n1"
_IMATINIB_FP = _MORGAN.GetFingerprint(Chem.MolFromSmiles(IMATINIB))


def imatinib_like(mol: Chem.Mol) -> float:
    """Geometric mean of Tanimoto similarity to imatinib (Morgan, radius 2), QED, a logP window
    (1 in 2..4, a Gaussian of sigma 1 outside) and a TPSA ceiling (1 up to 100, decaying over 20 above).

    >>> round(imatinib_like(Chem.MolFromSmiles(IMATINIB)), 3)
    0.756
    """
    similarity = DataStructs.TanimotoSimilarity(_MORGAN.GetFingerprint(mol), _IMATINIB_FP)
    logp, tpsa = Crippen.MolLogP(mol), Descriptors.TPSA(mol)
    logp_fit = 1.0 if 2 <= logp <= 4 else math.exp(-0.5 * min(abs(logp - 2), abs(logp - 4)) ** 2)
    tpsa_fit = 1.0 if tpsa <= 100 else math.exp(-(tpsa - 100) / 20)
    parts = (similarity, QED.qed(mol), logp_fit, tpsa_fit)
    return math.prod(parts) ** (1 / len(parts))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", help="checkpoint (default: the shipped lead model)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--methods", default="neighbourhood,bo,random", help="default: neighbourhood,bo,random")
    parser.add_argument("--budget", type=int, default=1000, help="oracle calls per method and seed (default 1000)")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated (default 0,1,2)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="an [optimize] key for every method, e.g. max_stale_rounds=3")
    args = parser.parse_args(argv)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or args.budget < 1:
        print(f"error: --seeds must be comma-separated integers (got {args.seeds!r}) and --budget at least 1",
              file=sys.stderr)
        return 2

    import pandas as pd
    import torch

    import molvae
    from molvae.config import parse_pairs

    if args.threads:
        torch.set_num_threads(args.threads)
    model = molvae.load(args.model or "lead")
    objective = "custom_objective:imatinib_like:max"  # this file, importable as the script's own folder is on sys.path
    rows = []
    for seed in seeds:
        campaign = model.campaign(objective, method=args.methods, budget=args.budget, seed=seed,
                                  settings=parse_pairs(args.set, "--set"))
        for row in campaign.summary.to_dict("records"):
            rows.append({"seed": seed, **row})
            print(f"seed {seed} {row['method']}: top-10 mean {row['top10_mean']:.3f} in {row['seconds']:.0f} s",
                  file=sys.stderr)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    runs = pd.DataFrame(rows)
    runs.to_csv(out / "runs.csv", index=False)
    table = runs.groupby("method", sort=False).agg(top10=("top10_mean", "mean"), std=("top10_mean", "std"),
                                                    low=("top10_mean", "min"), high=("top10_mean", "max"),
                                                    seconds=("seconds", "mean"))
    print(f"imatinib_like, {args.budget} calls, seeds {args.seeds}: top-10 mean\n")
    print("| method | mean ± std | lowest to highest seed | seconds per run |\n|---|---|---|---|")
    for method, r in table.iterrows():
        print(f"| {method} | {r.top10:.3f} ± {0 if math.isnan(r['std']) else r['std']:.3f} | "
              f"{r.low:.3f} to {r.high:.3f} | {r.seconds:.0f} |")
    return 0


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
