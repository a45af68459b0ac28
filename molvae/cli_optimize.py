"""``molvae optimize``: property-guided optimization in latent space (I/O only; logic in molvae.optimize).

``register(subparsers)`` adds the subcommand to ``molvae``'s parser; :func:`cmd_optimize` reads
the run file and seeds, writes CSV/PNG/JSON outputs and opens the MLflow runs (one parent
run per optimization, one child run per method).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from molvae import BUNDLED_DATA
from molvae.config import parse_pairs

log = logging.getLogger("molvae")

__all__ = ["Recipe", "cmd_optimize", "load_recipe", "register"]

EPILOG = """examples:
  molvae optimize --model runs/exp1/model.pt --objective "qed:max" --budget 2000 --out opt_qed/
  molvae optimize --model runs/exp1/model.pt --objective "logp:window:2:3,sa:min" --method bo --out opt_multi/
  molvae optimize --model runs/exp1/model.pt --seeds leads.csv --objective plogp_raw:max \\
      --min-similarity 0.4 --out leads_opt/
  molvae optimize --model runs/exp1/model.pt --config pipelines/recipes/optimize_qed.toml --out opt_qed/

objectives (comma-separated; see molvae.objectives):
  <property>:max | <property>:min | <property>:window:<low>:<high>   [:weight=W :width=W :midpoint=M :scale=S]
  property = qed, logp, sa, plogp, plogp_raw, mw, tpsa, hbd, hba, rotb, rings, heavy_atoms,
             sim:<SMILES> (Tanimoto to a reference) or a custom scorer module:function (takes an RDKit Mol)

oracle calls: one call = one RDKit scoring of a valid, distinct molecule that meets the similarity
floor. Invalid decodes, repeats of a scored molecule and molecules below the floor cost no call
and are counted separately; the budget (per method, and per seed with --seeds) is never exceeded.

outputs in OUT/: best.csv (top molecules, ranked by true score), candidates.csv (every scored
molecule), summary.csv/summary.json (per method: top scores, oracle counts, surrogate-vs-truth gap),
best.png (grid), curve.png (best score vs oracle calls per method); with --seeds also leads.csv.
"""

_RECIPE_KEYS = ("objective", "objectives", "methods", "optimize", "filters", "tracking")


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One optimization run: what to optimize, how, and where it is recorded."""

    objectives: tuple  # tuple[Objective, ...]
    methods: tuple[str, ...]
    config: Any  # OptimizeConfig
    filters: Any  # Filters
    tracking: Any  # TrackingConfig


def load_recipe(args: argparse.Namespace) -> Recipe:
    """The run file (``--config``, optional) with the command-line flags on top of it."""
    from molvae.objectives import filters_from_dict, objectives_from_tables, parse_objectives
    from molvae.optimize import OPTIMIZERS, optimize_config_from_dict
    from molvae.tracking import TrackingConfig

    table: dict[str, Any] = {}
    if args.config:
        try:
            table = tomllib.loads(Path(args.config).read_text())
        except FileNotFoundError:
            raise ValueError(f"{args.config}: no such run file") from None
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{args.config}: invalid TOML: {err}") from None
        for key in table:
            if key not in _RECIPE_KEYS:
                raise ValueError(f"{args.config}: unknown key {key!r}; allowed: {', '.join(_RECIPE_KEYS)}")
    if args.objective:
        objectives = parse_objectives(args.objective)
    elif "objective" in table:
        objectives = parse_objectives(table["objective"])
    elif "objectives" in table:
        objectives = objectives_from_tables(table["objectives"])
    else:
        raise ValueError("no objective: give --objective (e.g. 'qed:max') or objectives in --config")

    methods = tuple(m.strip() for m in args.method.split(",")) if args.method else tuple(table.get("methods", ()))
    methods = methods or (("neighbourhood", "gradient", "random") if args.seeds else ("gradient", "bo", "random"))
    for method in methods:
        if method not in OPTIMIZERS:
            raise ValueError(f"unknown method {method!r}; choose from {', '.join(OPTIMIZERS)}")

    overrides = dict(table.get("optimize", {}))
    overrides.update(parse_pairs(args.set, "--set"))
    for flag, key in (("budget", "budget"), ("batch_size", "batch_size"), ("seed", "seed"),
                      ("min_similarity", "min_similarity"), ("surrogate", "surrogate")):
        value = getattr(args, flag)
        if value is not None:
            overrides[key] = value
    config = optimize_config_from_dict(overrides)

    filter_table = dict(table.get("filters", {}))
    filter_table.update(parse_pairs(args.filter, "--filter"))
    filters = filters_from_dict(filter_table)

    tracking_table = dict(table.get("tracking", {}))
    known = {f.name for f in dataclasses.fields(TrackingConfig)}
    for key in tracking_table:
        if key not in known:
            raise ValueError(f"tracking: unknown key {key!r}; allowed: {', '.join(sorted(known))}")
    tracking = TrackingConfig(**{"experiment": "molvae-optimize", **tracking_table})
    if args.no_track:
        tracking = dataclasses.replace(tracking, enabled=False)
    if args.tracking_uri:
        tracking = dataclasses.replace(tracking, uri=args.tracking_uri)
    if args.experiment:
        tracking = dataclasses.replace(tracking, experiment=args.experiment)
    return Recipe(tuple(objectives), methods, config, filters, tracking)


# --- I/O helpers ------------------------------------------------------------------------------

def _surrogate_data(path: str, column: str, objectives) -> tuple[list[str], dict[str, list[float]]]:
    """SMILES of a user file and, per objective, a numeric column named like its label (if present)."""
    import pandas as pd

    from molvae.data import read_smiles_table

    table, smiles_column = read_smiles_table(path, column)
    labels = {}
    for objective in objectives:
        if objective.label in table.columns and objective.label != smiles_column:
            labels[objective.label] = pd.to_numeric(table[objective.label], errors="coerce").astype(float).tolist()
            log.info("surrogate labels for %s: column %r of %s", objective.label, objective.label, path)
    return table[smiles_column].tolist(), labels


def _write_csv(rows, path: Path) -> Path:
    """Write a DataFrame, or a list of dicts, as CSV."""
    import pandas as pd

    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(rows)
    frame.to_csv(path, index=False)
    return path


def _curve_png(curves: dict[str, list[float]], path: Path, ylabel: str, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, curve in curves.items():
        ax.plot(range(1, len(curve) + 1), curve, label=method, lw=1.6)
    ax.set_xlabel("oracle calls")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and math.isfinite(v)}


def _log_curve(tracker, name: str, curve: list[float], points: int = 100) -> None:
    """The best-score curve as an MLflow metric with the call number as step (about ``points`` steps)."""
    if not curve:
        return
    every = max(1, len(curve) // points)
    for call in range(every, len(curve) + 1, every):
        value = curve[call - 1]
        if math.isfinite(value):
            tracker.log_metrics({name: value}, step=call)


def _tracker(tracking, run_name: str, parent=None):
    from molvae.tracking import MlflowTracker, NullTracker

    return MlflowTracker(tracking, run_name, parent=parent) if tracking.enabled else NullTracker()


# --- the command ------------------------------------------------------------------------------

def cmd_optimize(args: argparse.Namespace) -> int:
    """Run the optimization described by the flags (and ``--config``); write OUT/; print a summary."""
    import torch

    from molvae.checkpoint import load_model
    from molvae.objectives import format_objectives
    from molvae.optimize import build_surrogate
    from molvae.device import resolve_device

    recipe = load_recipe(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if "gradient" in recipe.methods and recipe.config.surrogate == "none":
        raise ValueError("method 'gradient' needs a surrogate; drop it or choose --surrogate auto/head/ensemble")
    if args.model is None:
        from molvae.cli import shipped_model

        args.model = shipped_model("lead")  # the model that reads molecules and predicts their properties
    loaded = load_model(args.model, resolve_device(args.device))
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    from molvae.trainset import novelty_reference, surrogate_molecules

    training = surrogate_molecules(loaded)
    surrogate, surrogate_info = None, {"kind": "none"}
    if recipe.config.surrogate != "none":  # also without gradient ascent: every candidate gets a prediction
        if args.surrogate_data:
            smiles, labels = _surrogate_data(args.surrogate_data, args.surrogate_smiles_column, recipe.objectives)
        elif training is None and BUNDLED_DATA.exists():
            # e.g. the pretrained model in a fresh clone, whose MOSES training file is not fetched:
            # the bundled MOSES sample is from the same distribution, which is all a surrogate needs
            log.info("surrogate fitted on the bundled %s instead", BUNDLED_DATA.name)
            smiles, labels = _surrogate_data(str(BUNDLED_DATA), "", [])[0], None
        else:
            smiles, labels = training, None
        surrogate, surrogate_info = build_surrogate(loaded, recipe.objectives, recipe.config.surrogate, smiles,
                                                    labels, recipe.config)
        log.info("surrogate: %s", ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                                            for k, v in surrogate_info.items()))
    if "gradient" in recipe.methods and surrogate is None:
        raise ValueError("method 'gradient' needs a surrogate: the model has no property head for these "
                         "objectives and no training data was found (give --surrogate-data FILE)")
    params = {"model": str(args.model), "objectives": format_objectives(recipe.objectives),
              "methods": ",".join(recipe.methods), "seeds": args.seeds or "",
              "optimize": dataclasses.asdict(recipe.config),
              "filters": dataclasses.asdict(recipe.filters), "surrogate": surrogate_info}
    training_set = novelty_reference(loaded)
    with _tracker(recipe.tracking, args.run_name or out.name) as parent:
        parent.log_params(params)
        parent.link_model(args.model, loaded.meta)
        started = time.perf_counter()
        if args.seeds:
            files, table = _run_leads(args, recipe, loaded, surrogate, training_set, out, parent)
        else:
            files, table = _run_random_starts(args, recipe, loaded, surrogate, surrogate_info, training_set, out,
                                              parent)
        summary = {**params, "results": table, "seconds": time.perf_counter() - started}
        files.append(out / "summary.json")
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        for path in files:
            parent.log_artifact(path)
    _print_summary(table)
    print(f"outputs in {out}/: " + ", ".join(sorted(p.name for p in files)))
    if parent.run_id:
        print(f"MLflow run {parent.run_id} in {recipe.tracking.resolved_uri()}")
    return 0


def _run_random_starts(args, recipe: Recipe, loaded, surrogate, surrogate_info, training, out: Path, parent):
    from molvae.optimize import OptimizationResult, candidates_table, run_method
    from molvae.report import molecule_grid_png

    results = {}
    for method in recipe.methods:
        with _tracker(recipe.tracking, method, parent=parent) as child:
            child.log_params({"method": method, "budget": recipe.config.budget})
            result = run_method(loaded, recipe.objectives, method, recipe.config, recipe.filters, surrogate)
            child.log_metrics(_finite(result.summary()))
            _log_curve(child, "best_score", result.best_curve)
        parent.log_metrics(_finite({f"{method}_{k}": v for k, v in result.summary().items()
                                    if k in ("top1_mean", "top3_mean", "top10_mean", "oracle_calls")}))
        results[method] = result
    combined = OptimizationResult(recipe.objectives, recipe.config.budget, results, surrogate_info)
    extra = [p for p in args.report_properties.split(",") if p]
    ranked = combined.ranked()
    files = [
        _write_csv(candidates_table(ranked[: args.top], recipe.objectives, training, extra), out / "best.csv"),
        _write_csv(candidates_table([c for r in results.values() for c in r.candidates], recipe.objectives, training),
                   out / "candidates.csv"),
    ]
    table = [{"method": m, **r.summary()} for m, r in results.items()]
    files.append(_write_csv(table, out / "summary.csv"))
    shown = ranked[: args.grid]
    files.append(molecule_grid_png([c.smiles for c in shown], out / "best.png",
                                   [f"{c.score:.3f} {c.method} #{c.call}" for c in shown]))
    first = recipe.objectives[0]
    ylabel = "best true score" if len(recipe.objectives) > 1 else f"best {first.label} ({first.goal})"
    files.append(_curve_png({m: r.best_curve for m, r in results.items()}, out / "curve.png", ylabel,
                            f"budget {recipe.config.budget} calls per method"))
    return files, table


def _run_leads(args, recipe: Recipe, loaded, surrogate, training, out: Path, parent):
    import pandas as pd

    from molvae.data import read_smiles_table
    from molvae.optimize import candidates_table, lead_summary, optimize_leads
    from molvae.report import molecule_grid_png

    seeds_table, column = read_smiles_table(args.seeds, args.smiles_column)
    seeds = seeds_table[column].tolist()
    lead_rows, best_rows, all_rows, table, curves, grid = [], [], [], [], {}, []
    for method in recipe.methods:
        with _tracker(recipe.tracking, method, parent=parent) as child:
            child.log_params({"method": method, "budget_per_seed": recipe.config.budget,
                              "min_similarity": recipe.config.min_similarity, "seeds": len(seeds)})
            results = optimize_leads(loaded, seeds, recipe.objectives, method, recipe.config, recipe.filters,
                                     surrogate, progress=lambda r: log.info(
                                         "%s seed %d: %s", method, r.index + 1,
                                         f"{r.start_score} -> {r.best.score if r.best else None}"))
            summary = lead_summary(results)
            child.log_metrics(_finite(summary))
            if len(results) <= 100:
                for r in results:
                    child.log_metrics({"improvement": r.improvement, "success": float(r.success)}, step=r.index + 1)
        parent.log_metrics(_finite({f"{method}_{k}": summary[k]
                                    for k in ("improvement_mean", "improvement_std", "success_rate")}))
        table.append({"method": method, **summary})
        for r in results:
            lead_rows.append({
                "seed_index": r.index + 1, "seed_input": r.input, "seed_smiles": r.smiles, "status": r.status,
                "method": method, "start_score": r.start_score,
                **{f"start_{k}": v for k, v in r.start_values.items()},
                "best_smiles": r.best.smiles if r.best else None, "best_score": r.best.score if r.best else None,
                **{f"best_{k}": v for k, v in (r.best.values if r.best else {}).items()},
                "improvement": r.improvement, "similarity": r.best.similarity if r.best else None,
                "success": r.success, "novel": (r.best.smiles not in training) if (r.best and training) else None,
                "found_at_call": r.best.call if r.best else None, "found_at_step": r.best.step if r.best else None,
                "calls": r.stats.calls, "decodes": r.stats.decodes, "invalid": r.stats.invalid,
                "duplicates": r.stats.duplicates, "below_floor": r.stats.below_floor, "seconds": r.seconds,
            })
            ranked = sorted((c for c in r.candidates if c.score is not None), key=lambda c: (-c.score, c.call))
            best_rows.append(candidates_table(ranked[: args.top_per_seed], recipe.objectives, training,
                                              seed_smiles=r.smiles or r.input))
            all_rows.append(candidates_table(r.candidates, recipe.objectives, training,
                                             seed_smiles=r.smiles or r.input))
            if r.success and len(grid) < args.grid:
                grid.append((r.best.smiles, f"+{r.improvement:.2f} sim {r.best.similarity:.2f} {method}"))
        curves[method] = _mean_improvement_curve(results, recipe.config.budget)
    files = [_write_csv(lead_rows, out / "leads.csv"), _write_csv(pd.concat(best_rows), out / "best.csv"),
             _write_csv(pd.concat(all_rows), out / "candidates.csv"), _write_csv(table, out / "summary.csv")]
    files.append(molecule_grid_png([s for s, _ in grid], out / "best.png", [legend for _, legend in grid]))
    files.append(_curve_png(curves, out / "curve.png", "mean improvement over seeds",
                            f"budget {recipe.config.budget} calls per seed, "
                            f"similarity >= {recipe.config.min_similarity}"))
    return files, table


def _mean_improvement_curve(results, budget: int) -> list[float]:
    """Mean over seeds of the best improvement found within the first n calls (0 before any)."""
    if not results:
        return []
    totals = [0.0] * budget
    for r in results:
        best = 0.0
        by_call = {c.call: c.score for c in r.candidates if c.score is not None}
        for call in range(1, budget + 1):
            score = by_call.get(call)
            if score is not None and r.start_score is not None:
                best = max(best, score - r.start_score)
            totals[call - 1] += best
    return [t / len(results) for t in totals]


def _print_summary(table: list[dict[str, Any]]) -> None:
    keys = ["top1_mean", "top3_mean", "top10_mean", "oracle_calls", "oracle_invalid", "oracle_duplicates",
            "surrogate_mae", "surrogate_spearman", "improvement_mean", "improvement_std", "success_rate",
            "similarity_mean", "seconds"]
    print()
    for row in table:
        shown = ", ".join(f"{k}={row[k]:.4g}" for k in keys if k in row and isinstance(row[k], (int, float))
                          and math.isfinite(row[k]))
        print(f"{row['method']:>9}: {shown}")
    print()


# --- the parser -------------------------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``optimize`` to molvae's subcommands; returns its parser."""
    p = subparsers.add_parser(
        "optimize", help="property-guided optimization in latent space (gradient, Bayesian optimization, random)",
        description="Search the latent space for molecules that score well on OBJECTIVE, from random starts\n"
                    "or from your lead molecules (--seeds). Every candidate is decoded and scored with the real\n"
                    "RDKit objective under a hard budget of oracle calls; the random baseline runs beside the\n"
                    "other methods at the same budget. Results are ranked by the true score, next to the\n"
                    "surrogate's prediction.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint written by `molvae train` (e.g. runs/exp1/model.pt); default: the "
                                   "lead model shipped with molvae, which reconstructs molecules and predicts their "
                                   "properties best (molvae/pretrained/MODEL_CARD.md)")
    p.add_argument("--objective", help="what to optimize, e.g. 'qed:max' or 'logp:window:2:3,sa:min' (see below)")
    p.add_argument("--config", help="TOML run file: objective/[[objectives]], methods, [optimize], [filters], "
                                    "[tracking] (see pipelines/optimize_*.toml); flags override it")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", help="comma-separated methods: gradient, bo, neighbourhood, random (default: "
                                    "gradient,bo,random; with --seeds: neighbourhood,gradient,random)")
    p.add_argument("--budget", type=int, help="oracle calls per method (per seed with --seeds); default 1000")
    p.add_argument("--batch-size", type=int, help="latent points per round (parallel starts, BO batch); default 32")
    p.add_argument("--seed", type=int, help="random seed (default 0)")
    p.add_argument("--seeds", help="CSV/SMI of lead molecules to optimize, one at a time from its own encoding")
    p.add_argument("--smiles-column", default="", help="SMILES column of --seeds (default: found by name)")
    p.add_argument("--min-similarity", type=float,
                   help="Tanimoto floor (Morgan radius 2) to each seed; nothing below it is returned (default 0)")
    p.add_argument("--surrogate", choices=["auto", "head", "ensemble", "none"],
                   help="property predictor on z: the model's joint head, an ensemble of 5 MLPs trained on "
                        "encoded molecules, or none (default auto: head if it predicts every objective)")
    p.add_argument("--surrogate-data", help="CSV to train the ensemble on (default: the model's training data); "
                                            "a numeric column named like an objective (e.g. 'qed') is used as "
                                            "its label, else the value is computed with RDKit / your scorer")
    p.add_argument("--surrogate-smiles-column", default="", help="SMILES column of --surrogate-data")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="hard filter (repeatable): max_sa, no_pains, min_ring_size, max_ring_size, min_mw, max_mw")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any [optimize] setting (repeatable), e.g. --set prior_weight=0.1 --set bo_acquisition=qucb")
    p.add_argument("--top", type=int, default=100, help="molecules in best.csv (default 100)")
    p.add_argument("--top-per-seed", type=int, default=3, help="with --seeds: molecules per seed in best.csv")
    p.add_argument("--grid", type=int, default=24, help="molecules drawn in best.png (default 24)")
    p.add_argument("--report-properties", default="qed,logp,sa,mw,plogp_raw",
                   help="extra RDKit properties written to best.csv (comma-separated)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=0, help="CPU threads for torch (0 = torch's default)")
    p.add_argument("--no-track", action="store_true", help="do not record MLflow runs")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--experiment", help="MLflow experiment (default molvae-optimize)")
    p.add_argument("--run-name", help="name of the parent MLflow run (default: the --out folder's name)")
    p.set_defaults(func=cmd_optimize)
    return p
