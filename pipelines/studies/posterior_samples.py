"""Diagnostic: decode latent points drawn from the posteriors of real molecules, not from the prior.

If these samples score far better on the MOSES metrics than prior samples of the same model, the
decoder is fine and the prior N(0, I) covers regions the encoder never uses ("holes"): the
remedy is a larger KL weight or more training, not a larger decoder. Not a generator to report:
its samples are neighbours of the input molecules (low novelty).

    python pipelines/studies/posterior_samples.py --model runs/moses_cpu/model.pt \\
        --data data/moses/train.csv.gz -n 10000 --out runs/moses_cpu/posterior10k.csv
    molvae evaluate runs/moses_cpu/posterior10k.csv --moses data/moses
"""

from __future__ import annotations

import argparse
import random


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="checkpoint written by `molvae train`")
    parser.add_argument("--data", required=True, help="SMILES file to draw the molecules from")
    parser.add_argument("-n", type=int, default=10000, help="molecules (default 10000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="CSV of decoded SMILES")
    args = parser.parse_args()

    import pandas as pd
    import torch

    from molvae.checkpoint import load_model
    from molvae.data import read_smiles_table
    from molvae.sample import decode_latents, encode_smiles

    loaded = load_model(args.model, "cpu")
    table, column = read_smiles_table(args.data)
    smiles = random.Random(args.seed).sample(table[column].tolist(), min(args.n, len(table)))
    encoded = encode_smiles(loaded, smiles)
    generator = torch.Generator().manual_seed(args.seed)
    sigma = (0.5 * encoded.logvar).exp()  # (N, Z)
    z = encoded.mu + sigma * torch.randn(encoded.mu.shape, generator=generator)  # z ~ q(z | x)
    print(f"{len(encoded.smiles)} molecules encoded ({len(encoded.rejected)} rejected); "
          f"mean |mu| {encoded.mu.norm(dim=1).mean():.2f}, mean sigma {sigma.mean():.3f}, "
          f"prior sample norm ~ {loaded.model.config.latent_dim ** 0.5:.2f}")
    decoded = decode_latents(loaded, z, temperature=1.0, generator=generator, batch_size=1000)
    pd.DataFrame({"smiles": decoded}).to_csv(args.out, index=False)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
