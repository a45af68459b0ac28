"""``molvae encode``, ``reconstruct``, ``score``, ``interpolate``, ``around`` and ``map``: reading
molecules into the latent space and writing them back out."""

from __future__ import annotations

import argparse
from pathlib import Path

from molvae.cli.common import (COUNT, REFINE, SEED, Number, input_args, load, model_args, read_smiles,
                               split_rejected, write_rejected)


def cmd_encode(args: argparse.Namespace) -> int:
    frame = load(args).encode(read_smiles(args.input, args.smiles_column), refine=args.refine)
    kept, rejected = split_rejected(frame)
    out = Path(args.out)
    kept.to_csv(out, index=False)
    write_rejected(rejected, out)
    dims = sum(c.startswith("z") for c in kept.columns)
    print(f"wrote {len(kept)} latent points ({dims} dimensions) to {out}; {len(rejected)} rejected")
    return 0


def cmd_reconstruct(args: argparse.Namespace) -> int:
    frame = load(args).reconstruct(read_smiles(args.input, args.smiles_column), beam=args.beam, refine=args.refine)
    kept, rejected = split_rejected(frame)
    kept["exact"] = kept["exact"].astype(bool)
    out = Path(args.out)
    kept.to_csv(out, index=False)
    write_rejected(rejected, out)
    n_inputs = len(frame)
    print(f"exact reconstruction {kept['exact'].mean() if len(kept) else 0.0:.3f} on {len(kept)} encoded molecules "
          f"({kept['exact'].sum() / max(n_inputs, 1):.3f} of all {n_inputs} inputs, {len(rejected)} rejected); "
          f"mean Tanimoto of decode to input {kept['tanimoto'].mean() if len(kept) else 0.0:.3f}; wrote {out}")
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    frame = load(args).score(read_smiles(args.input, args.smiles_column), samples=args.samples)
    kept, rejected = split_rejected(frame)
    out = Path(args.out)
    kept.sort_values("neg_elbo", ascending=False).to_csv(out, index=False)
    write_rejected(rejected, out)
    print(f"scored {len(kept)} molecules (highest negative ELBO = least like the training data first); wrote {out}")
    return 0


def cmd_interpolate(args: argparse.Namespace) -> int:
    from molvae.report import molecule_grid_png

    path = load(args).interpolate(args.start, args.end, steps=args.steps, spherical=not args.linear)["smiles"].tolist()
    for i, s in enumerate(path):
        print(f"{i}\t{s}")
    molecule_grid_png([s or "" for s in path], args.out, [f"{i}: {s or 'invalid'}" for i, s in enumerate(path)],
                      per_row=len(path))
    print(f"wrote {args.out}")
    return 0


def cmd_around(args: argparse.Namespace) -> int:
    from molvae.report import molecule_grid_png

    table = load(args).around(args.smiles, n=args.n, radius=args.radius, seed=args.seed)
    out = Path(args.out)
    table.to_csv(out, index=False)
    unique = table[table["valid"]].drop_duplicates("smiles")
    molecule_grid_png(unique["smiles"].tolist(), out.with_suffix(".png"))
    print(f"{len(unique)} distinct molecules around {args.smiles}; wrote {out} and {out.with_suffix('.png')}")
    return 0


def cmd_map(args: argparse.Namespace) -> int:
    from molvae.report import scatter_png

    table = load(args).latent_map(read_smiles(args.data, args.smiles_column)[: args.max], prop=args.property)
    out = Path(args.out)
    scatter_png(table["pc1"].tolist(), table["pc2"].tolist(), table[args.property].tolist(), out,
                f"latent space (PCA of mu), {len(table)} molecules", args.property)
    table.to_csv(out.with_suffix(".csv"), index=False)
    print(f"wrote {out} and {out.with_suffix('.csv')}")
    return 0


def _refine_arg(p: argparse.ArgumentParser, default: int | None) -> None:
    p.add_argument("--refine", type=REFINE, default=default, metavar="STEPS",
                   help="move each encoding by this many gradient steps toward a point the decoder writes the "
                        "molecule from (0 = the encoder mean; default "
                        + ("10, molvae.sample.REFINE_STEPS" if default is None else str(default)) + ")")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("encode", help="latent coordinates (mu) of molecules, as CSV")
    model_args(p, "lead")
    input_args(p)
    p.add_argument("--out", required=True)
    _refine_arg(p, 0)
    p.set_defaults(func=cmd_encode)

    p = sub.add_parser("reconstruct", help="encode and decode molecules; report exact matches and similarity")
    model_args(p, "lead")
    input_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--beam", type=Number(int, 1, 1000), default=10,
                   help="decode by beam search of this width, keeping the likeliest canonical decode; "
                        "1 = greedy (default 10)")
    _refine_arg(p, None)
    p.set_defaults(func=cmd_reconstruct)

    p = sub.add_parser("score", help="per-molecule negative ELBO: an out-of-distribution score to sort by")
    model_args(p, "lead")
    input_args(p)
    p.add_argument("--out", required=True)
    p.add_argument("--samples", type=Number(int, 1, 10**4), default=4,
                   help="draws of z averaged per molecule (default 4)")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("interpolate", help="decode the latent path between two molecules into a strip image")
    model_args(p, "lead")
    p.add_argument("--start", required=True, help="SMILES")
    p.add_argument("--end", required=True, help="SMILES")
    p.add_argument("--steps", type=Number(int, 2, 10**4), default=8, help="points on the path (default 8)")
    p.add_argument("--linear", action="store_true", help="linear instead of spherical interpolation")
    p.add_argument("--out", default="interpolation.png")
    p.set_defaults(func=cmd_interpolate)

    p = sub.add_parser("around", help="sample molecules in the latent neighbourhood of a molecule")
    model_args(p, "lead")
    p.add_argument("--smiles", required=True)
    p.add_argument("-n", type=Number(int, 1, 10**7), default=24, help="molecules (default 24)")
    p.add_argument("--radius", type=Number(float, 0, 100), default=0.5,
                   help="standard deviation of the latent noise (default 0.5)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", default="around.csv")
    p.set_defaults(func=cmd_around)

    p = sub.add_parser("map", help="2-D PCA map of the latent space coloured by a property (PNG + CSV)")
    model_args(p, "lead")
    input_args(p, "--data")
    p.add_argument("--property", default="qed")
    p.add_argument("--max", type=COUNT, default=5000, help="molecules to map (default 5000)")
    p.add_argument("--out", default="latent_map.png")
    p.set_defaults(func=cmd_map)
