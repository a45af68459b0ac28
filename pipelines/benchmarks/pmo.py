#!/usr/bin/env python
"""PMO (Gao et al. 2022, "Sample Efficiency Matters"): molvae's optimizers on PMO's tasks, scored as PMO scores them.

Each run optimizes one task (a ``pmo:`` objective, molvae/pmo.py) with one method and one seed from
random starts, under a budget of oracle calls (PMO: 10,000). PMO's accounting: an oracle call is a
new unique molecule (canonical SMILES); repeats and invalid decodes are free and not counted. The
figure is the AUC top-10: the area under the curve "mean of the 10 best scores so far" against
calls, sampled every 100 calls (trapezoids, from 0), divided by the budget; a run that stops early
carries its last value to the budget (mol_opt's ``top_auc`` with ``finish=True``,
:func:`molvae.optimize.top_k_auc`). PMO reports the mean of 5 seeds per task and the sum over tasks.

The 20 tasks molvae can compute are PMO's 23 less drd2, gsk3b and jnk3 (TDC's trained classifiers,
not available here). No surrogate is fitted: labelling molecules with a PMO objective to fit one
would be oracle calls outside the budget, so ``gradient`` (which needs a surrogate) is not offered.

The default method is molvae's default from random starts: the population search (``neighbourhood``)
with :data:`molvae.optimize.POPULATION_SEARCH` under whatever --batch-size, --spread and --set give,
beside other methods too (``--methods neighbourhood,random``), which keep the defaults.
Full size (GPU, or shards side by side on CPU):
    python pipelines/benchmarks/pmo.py --out runs/pmo --seeds 0,1,2,3,4
Two shards on a 2-core CPU, then merged:
    for i in 0 1; do python pipelines/benchmarks/pmo.py --out runs/pmo/shard$i --shard $i/2 --threads 1 & done; wait
    python pipelines/benchmarks/pmo.py --merge runs/pmo/shard0 runs/pmo/shard1 --out runs/pmo

Writes OUT/runs.csv (one row per task, method and seed, appended as each run ends: an interrupted
run resumes where it stopped), OUT/curves.csv (top-10 mean every 100 calls), OUT/candidates/*.csv.gz
(every molecule scored, in call order) and OUT/run.json; then OUT/results.csv and OUT/results.md
(per task and method: AUC top-10 mean and std over seeds, CPU minutes per run; a sum row) and
OUT/curves.png; prints the table. ``--peers CSV [CSV ...]`` adds other methods' columns to the table
(CSVs of task, method, auc_top10: docs/results/pmo/peers.csv holds the published REINVENT, Graph GA,
GP BO, SELFIES-VAE BO, Mol GA, Genetic GFN and f-RAG; another run's results.csv fits too); ``--top-molecules TASKS``
draws the 3 best molecules of those tasks over all seeds (OUT/top_molecules.png). ``--compare
LABEL=DIR ...`` puts study arms (folders run with different settings) side by side per task and seed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FREQ = 100  # PMO samples the top-10 curve every 100 calls
SETTINGS_KEYS = ("model", "budget", "batch_size", "settings")  # what shards must share to be merged


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--tasks", default="all", help="comma-separated PMO tasks, with or without 'pmo:' (default all 20)")
    p.add_argument("--methods", default="neighbourhood",
                   help="comma-separated: bo, neighbourhood, random (default neighbourhood, molvae's default)")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated random seeds (PMO: 5 runs, default 0,1,2,3,4)")
    p.add_argument("--budget", type=int, default=10000, help="oracle calls per run (PMO: 10000)")
    p.add_argument("--model", help="checkpoint (default: the shipped lead model)")
    p.add_argument("--batch-size", type=int,
                   help="latent points per round (default 256 for the population search alone, else 32)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", help="any [optimize] setting (repeatable)")
    p.add_argument("--spread", type=float, help="exemplar spread of the draws from the prior (optimize.prior_spread)")
    p.add_argument("--shard", help="I/N: run only runs I, I+N, I+2N, ... of the task x method x seed list")
    p.add_argument("--merge", nargs="+", metavar="DIR", help="combine the runs of finished shards into --out")
    p.add_argument("--peers", nargs="+", metavar="CSV",
                   help="results to put beside ours: CSVs with task, method, auc_top10 (published, or another "
                        "run's results.csv)")
    p.add_argument("--top-molecules", metavar="TASKS", help="comma-separated tasks whose 3 best molecules to draw")
    p.add_argument("--compare", nargs="+", metavar="LABEL=DIR",
                   help="study arms side by side: folders of this script run with any settings (DIR,DIR,... for "
                        "an arm run in several), per task and seed, into --out (compare.csv, compare.md, compare.png)")
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = default)")
    return p.parse_args(argv)


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return 0, 1
    index, _, total = text.partition("/")
    if not (index.isdigit() and total.isdigit() and 0 <= int(index) < int(total)):
        raise ValueError(f"--shard {text!r}: expected I/N with 0 <= I < N")
    return int(index), int(total)


def parse_list(text: str, flag: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"{flag} is empty")
    if len(set(items)) != len(items):
        raise ValueError(f"{flag} {text!r} names an item twice")
    return items


def top_k_curve(scores: list[float | None], budget: int, k: int = 10, freq: int = FREQ) -> dict[int, float]:
    """Mean of the ``k`` best scores after every ``freq`` calls and at ``budget``; flat after the last call."""
    curve = {}
    for n in [*range(freq, budget, freq), budget]:
        best = sorted((s for s in scores[:n] if s is not None), reverse=True)[:k]
        curve[n] = sum(best) / len(best) if best else 0.0
    return curve


def run_one(loaded, task: str, method: str, seed: int, base, out: Path) -> tuple[dict, dict[int, float]]:
    from molvae.objectives import parse_objectives
    from molvae.optimize import candidates_table, optimize_config_from_dict, run_method, top_k_auc

    objectives = parse_objectives(f"pmo:{task}")
    config = optimize_config_from_dict({"seed": seed}, base)
    started, cpu_started = time.perf_counter(), time.process_time()
    result = run_method(loaded, objectives, method, config, surrogate=None)
    scores = [c.score for c in result.candidates]  # one per oracle call, in call order
    ranked = sorted((s for s in scores if s is not None), reverse=True)
    row = {
        "task": task, "method": method, "seed": seed,
        "auc_top10": top_k_auc(scores, 10, config.budget, FREQ), "auc_top1": top_k_auc(scores, 1, config.budget, FREQ),
        "auc_top100": top_k_auc(scores, 100, config.budget, FREQ),
        "top1": ranked[0] if ranked else 0.0, "top10_mean": sum(ranked[:10]) / len(ranked[:10]) if ranked else 0.0,
        "calls": result.stats.calls, "decodes": result.stats.decodes, "invalid": result.stats.invalid,
        "duplicates": result.stats.duplicates, "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time() - cpu_started,
    }
    (out / "candidates").mkdir(exist_ok=True)
    candidates_table(result.candidates, objectives).to_csv(
        out / "candidates" / f"{task}_{method}_seed{seed}.csv.gz", index=False)
    return row, top_k_curve(scores, config.budget)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    peers = read_peers(args.peers) if args.peers else None
    top_tasks = parse_list(args.top_molecules, "--top-molecules") if args.top_molecules else []
    if args.merge:
        return merge(args.merge, Path(args.out), peers, top_tasks)
    if args.compare:
        return compare(args.compare, Path(args.out))
    from molvae.pmo import PMO_TASKS, pmo_name

    tasks = list(PMO_TASKS) if args.tasks == "all" else [pmo_name(t).removeprefix("pmo:")
                                                         for t in parse_list(args.tasks, "--tasks")]
    methods = parse_list(args.methods, "--methods")
    if "gradient" in methods:
        raise ValueError("--methods: gradient needs a surrogate of the objective, and labelling molecules to fit "
                         "one would be oracle calls outside PMO's budget; choose from bo, neighbourhood, random")
    try:
        seeds = [int(s) for s in parse_list(args.seeds, "--seeds")]
    except ValueError as err:
        raise ValueError(f"--seeds {args.seeds!r}: expected comma-separated integers") from err
    shard, shards = parse_shard(args.shard)
    if args.budget < 1:
        raise ValueError(f"--budget must be at least 1, got {args.budget}")

    import pandas as pd
    import torch

    from molvae.checkpoint import PRETRAINED_LEAD, load_model
    from molvae.config import parse_pairs
    from molvae.device import resolve_device
    from molvae.optimize import (OPTIMIZERS, method_settings, optimize_config_from_dict, resolve_recipe,
                                 settings_per_method)

    for method in methods:
        if method not in OPTIMIZERS:
            raise ValueError(f"--methods: unknown method {method!r}; choose from bo, neighbourhood, random")
    settings = {"budget": args.budget, **parse_pairs(args.set, "--set"), "surrogate": "none"}
    for key, value in (("batch_size", args.batch_size), ("prior_spread", args.spread)):
        if value is not None:
            settings[key] = value
    configs = method_settings(settings, methods, from_leads=False)  # the population search keeps its preset
    _, settings = resolve_recipe(methods, settings, from_leads=False)  # ... which the shared settings hold if alone
    base = optimize_config_from_dict(settings)
    per_method = settings_per_method(configs, base)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_path = args.model or str(PRETRAINED_LEAD)
    loaded = load_model(model_path, resolve_device(args.device))
    if args.spread is not None and (loaded.model.exemplars is None or not loaded.model.exemplars.fitted):
        raise ValueError(f"--spread: {model_path} has no exemplar prior")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"model": model_path, "budget": args.budget, "batch_size": base.batch_size, "settings": settings,
            "tasks": tasks, "methods": methods, "seeds": seeds, "shard": f"{shard}/{shards}",
            **({"settings_per_method": per_method} if per_method else {})}
    meta_path = out / "run.json"
    if meta_path.exists():  # resume: only with the same settings
        before = json.loads(meta_path.read_text())
        if any(before.get(key) != meta[key] for key in (*SETTINGS_KEYS, "tasks", "methods", "seeds", "shard")):
            raise ValueError(f"{out} holds runs with other settings (see its run.json): choose another --out")
    meta_path.write_text(json.dumps(meta, indent=2) + "\n")

    runs_path, curves_path = out / "runs.csv", out / "curves.csv"
    done = set()
    if runs_path.exists():
        finished = pd.read_csv(runs_path)
        done = set(zip(finished["task"], finished["method"], finished["seed"].astype(int)))
    plan = [(t, m, s) for t in tasks for m in methods for s in seeds][shard::shards]
    for task, method, seed in plan:
        if (task, method, seed) in done:
            continue
        row, curve = run_one(loaded, task, method, seed, configs[method], out)
        pd.DataFrame([row]).to_csv(runs_path, mode="a", header=not runs_path.exists(), index=False)
        points = pd.DataFrame({"task": task, "method": method, "seed": seed, "calls": list(curve),
                               "top10_mean": list(curve.values())})
        points.to_csv(curves_path, mode="a", header=not curves_path.exists(), index=False)
        print(f"{task} {method} seed {seed}: AUC top-10 {row['auc_top10']:.4f}, top-10 mean {row['top10_mean']:.4f}, "
              f"{row['calls']} calls, {row['cpu_seconds'] / 60:.1f} CPU min", file=sys.stderr, flush=True)
    return report([out], out, peers, top_tasks)


def merge(folders: list[str], out: Path, peers=None, top_tasks: list[str] = ()) -> int:
    """Combine finished shards (their run.json, runs.csv and curves.csv) into ``out``."""
    for folder in folders:
        if not (Path(folder) / "run.json").exists():
            raise FileNotFoundError(f"{folder}: no run.json (not a folder of this script)")
    out.mkdir(parents=True, exist_ok=True)
    return report([Path(f) for f in folders], out, peers, top_tasks)


def compare(arms: list[str], out: Path) -> int:
    """Study arms side by side (``LABEL=DIR``, a folder of this script run with any settings, or
    ``LABEL=DIR,DIR,...`` for an arm run in several): per arm
    and task the AUC top-10 of every seed, their mean and the CPU minutes per run (compare.csv; a
    markdown table, a row per task and a column per arm, with the sum over tasks for arms that ran
    every task, compare.md), and the curves of the top-10 mean, one line per arm (compare.png)."""
    import pandas as pd

    from molvae.pmo import PMO_TASKS

    runs, curves, budgets = [], [], []
    for arm in arms:
        label, sep, folders = arm.partition("=")
        if not sep or not label or not folders:
            raise ValueError(f"--compare {arm!r}: expected LABEL=DIR or LABEL=DIR,DIR,...")
        for folder in folders.split(","):
            if not (Path(folder) / "runs.csv").exists():
                raise FileNotFoundError(f"--compare {arm}: {folder} has no runs.csv (no run finished there)")
            runs.append(pd.read_csv(Path(folder) / "runs.csv").assign(method=label))
            curves.append(pd.read_csv(Path(folder) / "curves.csv").assign(method=label))
            budgets.append(json.loads((Path(folder) / "run.json").read_text())["budget"])
    labels = [arm.partition("=")[0] for arm in arms]
    if len(set(labels)) != len(labels):
        raise ValueError(f"--compare: a label appears twice in {' '.join(labels)}")
    runs = pd.concat(runs, ignore_index=True).sort_values(["method", "task", "seed"], kind="stable")
    twice = runs[runs.duplicated(["method", "task", "seed"])]
    if len(twice):
        first = twice.iloc[0]
        raise ValueError(f"--compare: arm {first['method']!r} has {first['task']} seed {first['seed']} in two folders")
    table = (runs.groupby(["method", "task"], sort=False)
             .agg(seeds=("seed", lambda x: "/".join(map(str, x))),
                  auc_top10_per_seed=("auc_top10", lambda x: " / ".join(f"{v:.3f}" for v in x)),
                  auc_top10=("auc_top10", "mean"), cpu_minutes=("cpu_seconds", lambda x: x.mean() / 60))
             .reset_index().rename(columns={"method": "arm"}))
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "compare.csv", index=False)
    tasks = [task for task in PMO_TASKS if task in set(runs["task"])]
    by_arm = {label: table[table["arm"] == label].set_index("task") for label in labels}
    lines = ["| task | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for task in tasks:
        cells = [f"{rows.loc[task, 'auc_top10_per_seed']} (**{rows.loc[task, 'auc_top10']:.3f}**)"
                 if task in rows.index else "" for rows in by_arm.values()]
        seeds = sorted(set(runs.loc[runs["task"] == task, "seed"]))
        lines.append(f"| {task} (seeds {'/'.join(map(str, seeds))}) | " + " | ".join(cells) + " |")
    sums = [f"**{rows['auc_top10'].sum():.3f}**" if len(rows) == len(tasks) else "" for rows in by_arm.values()]
    cpu = [f"{runs.loc[runs['method'] == label, 'cpu_seconds'].mean() / 60:.1f}" for label in labels]
    lines += ["| sum | " + " | ".join(sums) + " |", "| CPU min per run | " + " | ".join(cpu) + " |"]
    text = "\n".join(lines) + "\n"
    (out / "compare.md").write_text(text)
    plot_curves(pd.concat(curves, ignore_index=True), max(budgets), out / "compare.png")
    print(text)
    return 0


def read_peers(paths: list[str]):
    """Results to compare with, one row per task and method: at least ``task``, ``method``, ``auc_top10``."""
    import pandas as pd

    tables = []
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"--peers {path}: no such file")
        table = pd.read_csv(path)
        missing = {"task", "method", "auc_top10"} - set(table.columns)
        if missing:
            raise ValueError(f"--peers {path}: no column {', '.join(sorted(missing))} (needs task, method, auc_top10)")
        tables.append(table[["task", "method", "auc_top10"]])
    peers = pd.concat(tables, ignore_index=True)
    if peers.duplicated(["task", "method"]).any():
        raise ValueError(f"--peers {' '.join(paths)}: a task and method appear twice")
    return peers


def report(folders: list[Path], out: Path, peers=None, top_tasks: list[str] = ()) -> int:
    """results.csv / .md, curves.png (and top_molecules.png) over the runs in ``folders``; prints the table."""
    import pandas as pd

    metas = [json.loads((f / "run.json").read_text()) for f in folders]
    if any(any(m[key] != metas[0][key] for key in SETTINGS_KEYS) for m in metas):
        raise ValueError("the shards were run with different models, budgets, batch sizes or --set settings")
    missing = [str(f) for f in folders if not (f / "runs.csv").exists()]
    if missing:
        raise FileNotFoundError(f"{missing[0]}: no runs.csv (no run finished there)")
    runs = pd.concat([pd.read_csv(f / "runs.csv") for f in folders], ignore_index=True)
    curves = pd.concat([pd.read_csv(f / "curves.csv") for f in folders], ignore_index=True)
    if runs.duplicated(["task", "method", "seed"]).any():
        raise ValueError("a task, method and seed was run in two of the folders")
    if len(folders) > 1 or folders[0] != out:
        runs.to_csv(out / "runs.csv", index=False)
        curves.to_csv(out / "curves.csv", index=False)
        (out / "run.json").write_text(json.dumps({**{k: metas[0][k] for k in SETTINGS_KEYS},
                                                  "merged": [str(f) for f in folders]}, indent=2) + "\n")
    from molvae.pmo import PMO_TASKS

    order = {task: i for i, task in enumerate(PMO_TASKS)}
    results = (runs.groupby(["task", "method"], sort=False)
               .agg(seeds=("seed", "count"), auc_top10=("auc_top10", "mean"),
                    auc_top10_std=("auc_top10", lambda x: x.std(ddof=0)), auc_top1=("auc_top1", "mean"),
                    top10_mean=("top10_mean", "mean"), calls=("calls", "mean"),
                    cpu_minutes=("cpu_seconds", lambda x: x.mean() / 60))
               .reset_index())
    results = results.sort_values(["task", "method"], key=lambda c: c.map(order) if c.name == "task" else c)
    results.to_csv(out / "results.csv", index=False)
    text = markdown(results, metas[0], peers)
    (out / "results.md").write_text(text)
    plot_curves(curves, metas[0]["budget"], out / "curves.png")
    if top_tasks:
        draw_top_molecules(folders, runs, top_tasks, out / "top_molecules.png")
    print(text)
    return 0


def markdown(results, meta: dict, peers=None) -> str:
    methods = list(dict.fromkeys(results["method"]))
    peer_methods = list(dict.fromkeys(peers["method"])) if peers is not None else []
    lines = [f"PMO, {meta['budget']} oracle calls per run, model {meta['model']}: AUC top-10, mean ± std over seeds "
             "(CPU minutes per run)" + ("; other methods beside (--peers)" if peer_methods else ""), "",
             "| task | " + " | ".join(methods + peer_methods) + " |",
             "|---|" + "---|" * (len(methods) + len(peer_methods))]
    table = results.set_index(["task", "method"])
    others = peers.set_index(["task", "method"])["auc_top10"] if peers is not None else None
    tasks = list(dict.fromkeys(results["task"]))
    for task in tasks:
        cells = []
        for method in methods:
            if (task, method) not in table.index:
                cells.append("")
                continue
            r = table.loc[(task, method)]
            cells.append(f"{r['auc_top10']:.3f} ± {r['auc_top10_std']:.3f} ({r['cpu_minutes']:.1f})")
        cells += [f"{others[(task, m)]:.3f}" if (task, m) in others.index else "" for m in peer_methods]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    sums = results.groupby("method", sort=False).agg(total=("auc_top10", "sum"), tasks=("task", "count"))
    peer_sums = [others[[(t, m) for t in tasks if (t, m) in others.index]] for m in peer_methods]
    lines.append("| **sum** | " + " | ".join([f"**{sums.loc[m, 'total']:.3f}** ({sums.loc[m, 'tasks']} tasks)"
                                              for m in methods] +
                                             [f"{s.sum():.3f} ({len(s)} tasks)" for s in peer_sums]) + " |")
    seeds = sorted(set(results["seeds"]))
    lines += ["", f"Seeds per task: {', '.join(map(str, seeds))}. The sum is over the tasks run; PMO's own sums "
              "are over 23 tasks (drd2, gsk3b and jnk3 are not computable here).", ""]
    for method in methods:
        ours = table.xs(method, level="method")["auc_top10"]
        for peer in peer_methods:
            below = [t for t in ours.index if (t, peer) in others.index and ours[t] < others[(t, peer)]]
            lines.append(f"- {method} below {peer} on {len(below)} of {len(ours)} tasks"
                         + (f": {', '.join(below)}" if below else ""))
    return "\n".join(lines + ([""] if peer_methods else []))


def draw_top_molecules(folders: list[Path], runs, tasks: list[str], path: Path) -> None:
    """The 3 best distinct molecules of each task over every seed of the first method, one row per task."""
    import pandas as pd
    from rdkit import Chem
    from rdkit.Chem import Draw

    method = runs["method"].iloc[0]
    mols, legends = [], []
    for task in tasks:
        task = task.removeprefix("pmo:")
        files = [f / "candidates" / f"{task}_{method}_seed{seed}.csv.gz" for f in folders
                 for seed in runs.loc[(runs["task"] == task) & (runs["method"] == method), "seed"]]
        files = [f for f in files if f.exists()]
        if not files:
            raise ValueError(f"--top-molecules: no {method} run of {task} in {', '.join(map(str, folders))}")
        pooled = pd.concat([pd.read_csv(f, usecols=["smiles", "score"]) for f in files]).dropna(subset=["score"])
        best = pooled.sort_values("score", ascending=False, kind="stable").drop_duplicates("smiles").head(3)
        mols += [Chem.MolFromSmiles(s) for s in best["smiles"]] + [Chem.Mol()] * (3 - len(best))
        legends += [f"{task}: {score:.3f}" for score in best["score"]] + [""] * (3 - len(best))
    Draw.MolsToGridImage(mols, molsPerRow=3, subImgSize=(300, 300), legends=legends).save(str(path))


def plot_curves(curves, budget: int, path: Path) -> None:
    """One panel per task, in PMO's order: the top-10 mean against calls, mean over seeds, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from molvae.pmo import PMO_TASKS

    tasks = [task for task in PMO_TASKS if task in set(curves["task"])]
    columns = min(4, len(tasks))
    rows = (len(tasks) + columns - 1) // columns
    figure, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.6 * rows), squeeze=False, sharex=True)
    for ax, task in zip(axes.flat, tasks):
        for method, group in curves[curves["task"] == task].groupby("method", sort=False):
            mean = group.groupby("calls")["top10_mean"].mean()
            ax.plot(mean.index, mean.values, label=method)
        ax.set_title(task, fontsize=9)
        ax.set_xlim(0, budget)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(tasks):]:
        ax.set_visible(False)
    labelled = {}  # every method once, though a panel may lack some
    for ax in axes.flat:
        for line in ax.get_lines():
            labelled.setdefault(line.get_label(), line)
    axes.flat[0].legend(list(labelled.values()), list(labelled), fontsize=7)
    figure.supxlabel("oracle calls")
    figure.supylabel("top-10 mean")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


if __name__ == "__main__":
    from molvae.entry import run_script

    run_script(main)
