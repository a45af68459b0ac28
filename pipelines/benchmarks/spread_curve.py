"""How the exemplar prior's spread trades likeness to the data for novelty: one model, several
spreads, the same number of samples each, scored on FCD/Test, novelty and the rest.

For each spread s, ``-n`` molecules are decoded (temperature 1.0) from z drawn from the posteriors
of the model's exemplars widened by s (``molvae sample --spread s``), and the model's own trained
prior is scored beside them; each twice, keeping every decode (``--no-canonical``) and keeping only
canonical SELFIES decodes (the default of ``molvae sample``). FCD/Test uses the MOSES test-set
statistics shipped with molvae; novelty is against the model's training molecules (the hashes its
checkpoint carries) or, with ``--moses``, against the MOSES training set as written (MOSES's
definition; use it when the exemplars are MOSES molecules). ``--modes`` picks the modes to run;
``novel`` is a third one: canonical decodes of molecules outside that reference only (``molvae
sample --novel``).

    python pipelines/benchmarks/spread_curve.py --spreads 1,1.25,1.5,1.75,2,2.5 -n 5000 --moses data/moses --out runs/spread
    python pipelines/benchmarks/spread_curve.py --spreads 1.5,2 -n 10000 --moses data/moses --modes novel --out runs/novel

Writes OUT/spread.csv and OUT/spread.png (FCD/Test against novelty, one point per spread and mode).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--model", help="checkpoint with an exemplar prior (default: the shipped sampling model)")
    parser.add_argument("--spreads", default="1,1.25,1.5,1.75,2,2.5", help="comma-separated spreads")
    parser.add_argument("-n", type=int, default=5000, help="samples per spread (default 5000)")
    parser.add_argument("--moses", help="MOSES data folder (molvae fetch-moses): novelty against its training set")
    parser.add_argument("--modes", default="every,canonical",
                        help="comma-separated: every (every decode), canonical (canonical decodes only), novel "
                             "(canonical decodes of molecules outside the novelty reference); default every,canonical")
    parser.add_argument("--no-trained-prior", action="store_true", help="skip the rows of the model's trained prior")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    parser.add_argument("--out", default="runs/spread")
    args = parser.parse_args(argv)
    try:
        spreads = [float(s) for s in args.spreads.split(",")]
    except ValueError:
        spreads = []
    if not spreads or min(spreads) <= 0 or args.n < 2:
        print(f"error: --spreads {args.spreads!r} must be positive numbers and -n at least 2", file=sys.stderr)
        return 2
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or not set(modes) <= {"every", "canonical", "novel"}:
        print(f"error: --modes {args.modes!r}: choose from every, canonical, novel", file=sys.stderr)
        return 2

    import pandas as pd
    import torch

    from molvae.checkpoint import PRETRAINED, load_model
    from molvae.metrics import generation_quality, novelty, uniqueness, validity
    from molvae.moses import load_moses, moses_test_fcd_reference
    from molvae.sample import draw_samples

    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.model or PRETRAINED, "cpu")
    exemplars = loaded.model.exemplars
    if exemplars is None or not exemplars.fitted:
        print(f"error: {args.model or PRETRAINED} has no exemplar prior (molvae fit-prior --kind exemplars)",
              file=sys.stderr)
        return 2
    if args.moses and not Path(args.moses, "train.csv.gz").is_file():
        print(f"error: {args.moses}/train.csv.gz not found: run `molvae fetch-moses` first", file=sys.stderr)
        return 2
    training = set(load_moses(Path(args.moses), ["train"])["train"]) if args.moses else loaded.training_index
    if "novel" in modes and training is None:
        print("error: --modes novel needs a novelty reference: --moses, or a model that carries its training set",
              file=sys.stderr)
        return 2
    reference = moses_test_fcd_reference()
    rows = []
    for mode in modes:
        canonical, exclude = mode != "every", training if mode == "novel" else None
        for spread in ([] if args.no_trained_prior else [None]) + spreads:  # None: the trained prior
            started = time.perf_counter()
            generator = torch.Generator().manual_seed(args.seed)
            if spread is None:
                def draw(count):
                    return (loaded.model.prior.sample(count, generator) if loaded.model.prior is not None
                            else torch.randn(count, loaded.model.config.latent_dim, generator=generator))
            else:
                exemplars.spread = spread

                def draw(count):
                    return exemplars.sample(count, generator)
            drawn = draw_samples(loaded, draw, args.n, 1.0, generator=generator, canonical=canonical,
                                 exclude=exclude, max_draws=100, progress=False)
            samples = drawn.smiles
            row = {"sampling": "trained prior" if spread is None else "exemplars", "spread": spread,
                   "canonical": canonical, "novel_only": exclude is not None, "samples": args.n,
                   "draws": drawn.draws,
                   "canonical_rate": drawn.canonical_rate, "validity": validity(samples),
                   "uniqueness": uniqueness(samples),
                   "novelty": novelty(samples, training) if training is not None else float("nan")}
            quality = generation_quality(samples, reference)
            row.update({key.removeprefix("sample_"): value for key, value in quality.items()})
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame(rows)
    table.to_csv(out / "spread.csv", index=False)
    _plot(table, out / "spread.png")
    print(f"wrote {out / 'spread.csv'} and {out / 'spread.png'}")
    return 0


# (novelty, FCD/Test) of the MOSES paper's models (Polykovskiy et al. 2020, Table 2), shown as peers
MOSES_PEERS = {"VAE": (0.695, 0.099), "CharRNN": (0.842, 0.073), "JT-VAE": (0.914, 0.395)}


def _plot(table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for colour, canonical, novel, label in (("C0", False, False, "every decode"),
                                            ("C2", True, False, "canonical decodes only"),
                                            ("C3", True, True, "canonical decodes of new molecules only")):
        mode = table[(table["canonical"] == canonical) & (table["novel_only"] == novel)]
        if mode.empty:
            continue
        curve = mode[mode["sampling"] == "exemplars"]
        ax.plot(curve["novelty"], curve["fcd"], "o-", color=colour, label=f"exemplar prior, {label}")
        for _, r in curve.iterrows():
            ax.annotate(f"{r['spread']:g}", (r["novelty"], r["fcd"]), fontsize=8, xytext=(4, -10),
                        textcoords="offset points")
        trained = mode[mode["sampling"] == "trained prior"]
        ax.scatter(trained["novelty"], trained["fcd"], marker="s", color=colour, edgecolor="k",
                   label=f"trained prior, {label}")
    for name, (novelty, fcd) in MOSES_PEERS.items():
        ax.scatter([novelty], [fcd], marker="*", s=90, color="k")
        ax.annotate(f"{name} (MOSES paper)", (novelty, fcd), fontsize=8, xytext=(5, 3), textcoords="offset points")
    ax.set_xlabel("novelty (share of unique valid samples not in the training set)")
    ax.set_ylabel("FCD/Test (lower is better)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(f"Spread (numbers): likeness against novelty ({int(table['samples'].iloc[0])} samples each)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
