"""The latent-space study: training recipes side by side at the same budget, each scored on how its
prior samples look (FCD/Test and the rest) and how well it reconstructs held-out molecules.

Every arm trains ``molvae train`` with one base config plus its own overrides, for the same
wall-clock minutes and CPU threads, then is scored the same way:

* ``n_samples`` prior samples at temperature 1.0: validity, unique@10k, novelty, FCD/Test (MOSES
  test-set statistics shipped with molvae), mean SA and QED, MOSES filter pass rate;
* FCD/Test of the decoder fed z ~ q(z | x) of ``n_samples`` training molecules (``posterior_fcd``):
  the gap to the prior's FCD is what the prior's holes cost;
* exact greedy reconstruction (and mean Tanimoto of decode to input) of the first ``n_reconstruct``
  molecules of the MOSES test set (``molvae fetch-moses``).

Results go to ``OUT/study.csv`` (one row per arm and budget) and ``OUT/study.png`` (exact
reconstruction against FCD/Test). Arms already trained (their ``model.pt`` exists) are only scored.

    python pipelines/studies/latent_study.py --data data/moses_sample_25k.csv --config pipelines/recipes/study.toml \\
        --minutes 7 --threads 1 --parallel 2 --out runs/study
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

# name -> overrides of the base config (molvae train --set ...)
ARMS: dict[str, list[str]] = {
    "baseline": [],  # N(0, I) prior, fixed KL weight of the base config
    "mmd": ["train.mmd_weight=100.0"],  # + MMD(q(z), N(0, I)) (InfoVAE / WAE)
    "kl_target": ["train.kl_target=40.0", "train.kl_weight=1.0"],  # KL held at 40 nats by a controller
    "flow": ["model.prior=flow"],  # RealNVP prior learned with the VAE, base KL weight
    "flow_kl_target": ["model.prior=flow", "train.kl_target=40.0", "train.kl_weight=1.0"],
    "mixture_kl_target": ["model.prior=mixture", "train.kl_target=40.0", "train.kl_weight=1.0"],
}
# name -> (the arm whose trained model gets a sampling prior fitted after training, molvae fit-prior options)
POSTHOC: dict[str, tuple[str, list[str]]] = {
    "baseline_fit_prior": ("baseline", ["--kind", "flow"]),  # a RealNVP flow fitted to posterior draws
    "flow_fit_prior": ("flow", ["--kind", "flow"]),
    "baseline_exemplars": ("baseline", ["--kind", "exemplars", "--spread", "1.7"]),  # posteriors of training molecules
    "flow_exemplars": ("flow", ["--kind", "exemplars", "--spread", "1.7"]),
    "kl_target_exemplars": ("kl_target", ["--kind", "exemplars", "--spread", "1.7"]),
}


def _train(arm: str, overrides: list[str], args: argparse.Namespace) -> subprocess.Popen:
    out = Path(args.out) / arm
    out.mkdir(parents=True, exist_ok=True)
    if arm in POSTHOC:  # no training: fit a sampling prior to the trained model of another arm
        source_arm, options = POSTHOC[arm]
        source = Path(args.out) / source_arm
        for name in ("metrics.json", "config.toml"):
            (out / name).write_text((source / name).read_text())
        command = [sys.executable, "-m", "molvae", "fit-prior", "--model", str(source / "model.pt"), *options,
                   "--steps", str(args.prior_steps), "--out", str(out / "model.pt")]
        print(f"[study] fitting a sampling prior ({' '.join(options)}) to {source_arm}", flush=True)
        return subprocess.Popen(command, stdout=open(out / "train.log", "w"), stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": str(args.threads)})
    command = [sys.executable, "-m", "molvae", "train", "--data", args.data, "--config", args.config, "--out", str(out),
               "--no-track", "--set", f"train.max_minutes={args.minutes}", "--set", f"train.num_threads={args.threads}",
               "--set", "sample.n=0", "--set", f"data.workers={args.threads}",
               "--set", "model.exemplars=0"]  # each recipe's own prior; exemplar sampling is a post-hoc arm
    for override in [*args.set, *overrides]:
        command += ["--set", override]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    log = open(out / "train.log", "w")
    print(f"[study] training {arm}: {' '.join(overrides) or '(base config)'}", flush=True)
    return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)


def _score(arm: str, args: argparse.Namespace) -> dict[str, object]:
    import torch

    from molvae.checkpoint import load_model
    from molvae.config import load_config
    from molvae.data import prepare
    from molvae.metrics import canonical_valid, generation_quality, novelty, uniqueness, validity
    from molvae.moses import chemnet_moments, fcd_of_moments, load_moses, moses_test_fcd_reference
    from molvae.chem import tanimoto, to_mol
    from molvae.sample import decode_latents, encode_smiles, sample_prior

    run = Path(args.out) / arm
    loaded = load_model(run / "model.pt")
    started = time.perf_counter()
    canonical = load_config(run / "config.toml").sample.canonical  # as the arm's recipe samples
    samples = sample_prior(loaded, args.n_samples, temperature=1.0, seed=0, progress=False, canonical=canonical).smiles
    training = set(prepare(args.data, loaded.data_config).kept["smiles"])
    row: dict[str, object] = {"arm": arm, "minutes": args.minutes, "threads": args.threads}
    row.update(validity=validity(samples), unique_at_min_10k_n=uniqueness(samples, min(10000, len(samples))),
               novelty=novelty(samples, training))
    reference = moses_test_fcd_reference()
    quality = generation_quality(samples, reference)
    row.update({key.removeprefix("sample_"): value for key, value in quality.items()})
    # The same decoder fed z ~ q(z | x) of training molecules instead of z ~ p(z): the gap between the
    # two FCDs is what the prior's holes cost; a gap near zero means the prior covers where molecules are.
    generator = torch.Generator().manual_seed(1)
    ordered = sorted(training)
    picked = [ordered[i] for i in torch.randperm(len(ordered), generator=generator)[: args.n_samples].tolist()]
    encoded_train = encode_smiles(loaded, picked)
    with torch.no_grad():
        z = encoded_train.mu + torch.exp(0.5 * encoded_train.logvar) * torch.randn(encoded_train.mu.shape, generator=generator)
        posterior = decode_latents(loaded, z, temperature=1.0, generator=generator)
    row["posterior_fcd"] = fcd_of_moments(chemnet_moments(canonical_valid(posterior), None), reference)
    held_out = load_moses(Path(args.moses), ["test"])["test"][: args.n_reconstruct]
    encoded = encode_smiles(loaded, held_out)
    with torch.no_grad():
        decoded = decode_latents(loaded, encoded.mu, temperature=0.0)
    exact = sum(d == s for d, s in zip(decoded, encoded.smiles))
    row.update(reconstruct_n=len(held_out), reconstruct_encoded=len(encoded.smiles),
               exact_reconstruction=exact / max(len(held_out), 1),
               mean_tanimoto=sum(tanimoto(to_mol(d), to_mol(s)) if d else 0.0 for d, s in zip(decoded, encoded.smiles))
               / max(len(encoded.smiles), 1))
    metrics = json.loads((run / "metrics.json").read_text())["training"]
    row.update(epochs=metrics["epochs"], best_epoch=metrics["best_epoch"], train_seconds=round(metrics["train_seconds"]),
               molecules_per_second=round(metrics["train_molecules_per_second"]),
               score_seconds=round(time.perf_counter() - started))
    print(f"[study] {arm}: " + ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
          flush=True)
    return row


def _plot(table, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 5.5))
    markers = "osD^vP*Xhp<>"
    for i, (_, r) in enumerate(table.iterrows()):  # a legend, not labels: the long runs sit close together
        marker = markers[i // 10 % len(markers)]
        ax.scatter(r["fcd"], r["exact_reconstruction"], s=45, color=f"C{i % 10}", marker=marker,
                   label=f"{r['arm']} ({r['minutes']:g} min)")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    ax.set_xlabel("FCD/Test of prior samples (lower is better)")
    ax.set_ylabel("exact reconstruction of held-out molecules")
    ax.set_xscale("log")
    ax.grid(alpha=0.3)
    ax.set_title("Latent-space recipes: reconstruction against sample quality")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--data", default="data/moses_sample_25k.csv")
    parser.add_argument("--config", default="pipelines/recipes/study.toml", help="base recipe of every arm (from scratch)")
    parser.add_argument("--arms", nargs="+", default=[*ARMS, *POSTHOC], help=f"from: {', '.join([*ARMS, *POSTHOC])}")
    parser.add_argument("--prior-steps", type=int, default=1000, help="fit-prior steps of the post-hoc arms")
    parser.add_argument("--minutes", type=float, default=7.0, help="training budget of every arm")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads per arm")
    parser.add_argument("--parallel", type=int, default=2, help="arms trained at once")
    parser.add_argument("--set", action="append", default=[], help="override for every arm (section.key=value)")
    parser.add_argument("--n-samples", type=int, default=10000)
    parser.add_argument("--n-reconstruct", type=int, default=1000)
    parser.add_argument("--moses", default="data/moses", help="MOSES data folder (molvae fetch-moses)")
    parser.add_argument("--out", default="runs/study")
    parser.add_argument("--extra", help="CSV of more points for the plot: arm, minutes, fcd, exact_reconstruction")
    parser.add_argument("--plot-only", action="store_true", help="redraw study.png from study.csv (and --extra)")
    args = parser.parse_args(argv)
    unknown = [a for a in args.arms if a not in ARMS and a not in POSTHOC]
    if unknown:
        parser.error(f"unknown arm(s) {unknown}; choose from {', '.join([*ARMS, *POSTHOC])}")
    for path in (args.data, args.config):
        if not Path(path).is_file():
            print(f"error: {path}: no such file", file=sys.stderr)
            return 2
    if not Path(args.moses, "test.csv.gz").exists():
        print(f"error: {args.moses}/test.csv.gz not found: run `molvae fetch-moses` first", file=sys.stderr)
        return 2
    if args.minutes <= 0 or args.threads < 1 or args.parallel < 1:
        print("error: --minutes, --threads and --parallel must be positive", file=sys.stderr)
        return 2

    if args.plot_only:
        args.arms = []
    pending = [a for a in args.arms if not (Path(args.out) / a / "model.pt").exists()]
    missing = [a for a in pending if a in POSTHOC and POSTHOC[a][0] not in pending
               and not (Path(args.out) / POSTHOC[a][0] / "model.pt").exists()]
    if missing:
        parser.error(f"{missing[0]} starts from arm {POSTHOC[missing[0]][0]}: train that arm too")
    running: dict[str, subprocess.Popen] = {}
    failed = []
    while pending or running:
        while len(running) < args.parallel:
            # a post-hoc arm waits until the arm it starts from is trained
            ready = [a for a in pending if POSTHOC.get(a, ("",))[0] not in pending + list(running)]
            if not ready:
                break
            pending.remove(ready[0])
            running[ready[0]] = _train(ready[0], ARMS.get(ready[0], []), args)
        time.sleep(5)
        for arm, process in list(running.items()):
            if process.poll() is not None:
                del running[arm]
                if process.returncode != 0:
                    failed.append(arm)
                    print(f"[study] {arm} failed (exit {process.returncode}); see {Path(args.out) / arm / 'train.log'}",
                          file=sys.stderr)
                else:
                    print(f"[study] {arm} trained", flush=True)

    import pandas as pd

    rows = [_score(arm, args) for arm in args.arms if arm not in failed]
    out = Path(args.out)
    table_path = out / "study.csv"
    table = pd.DataFrame(rows, columns=["arm", "minutes"] if not rows else None)
    if table_path.exists():  # keep rows of other arms and budgets
        old = pd.read_csv(table_path)
        old = old[~old.set_index(["arm", "minutes"]).index.isin(table.set_index(["arm", "minutes"]).index)]
        table = pd.concat([old, table], ignore_index=True)
    table.to_csv(table_path, index=False)
    shown = table
    if args.extra:  # points measured elsewhere (e.g. longer runs on other data), drawn beside the arms
        extra = pd.read_csv(args.extra)
        shown = pd.concat([table, extra[["arm", "minutes", "fcd", "exact_reconstruction"]]], ignore_index=True)
    _plot(shown, out / "study.png")
    print(table.to_string(index=False))
    print(f"[study] {table_path}, {out / 'study.png'}")
    return 1 if failed else 0


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
