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
from pathlib import Path
from typing import Any

from molvae.cli.common import BATCH, FRACTION, SEED, THREADS, Number, load
from molvae.config import parse_pairs
from molvae.errors import ConfigError

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
    method_configs: dict = dataclasses.field(default_factory=dict)  # method -> OptimizeConfig (method_settings)


def load_recipe(args: argparse.Namespace) -> Recipe:
    """The run file (``--config``, optional) with the command-line flags on top of it."""
    from molvae.config import build_dataclass, read_toml
    from molvae.objectives import filters_from_dict, objectives_from_tables, parse_objectives
    from molvae.optimize import OPTIMIZERS, method_settings, optimize_config_from_dict, resolve_recipe
    from molvae.tracking import TrackingConfig

    table: dict[str, Any] = read_toml(args.config, "run file") if args.config else {}
    for key in table:
        if key not in _RECIPE_KEYS:
            raise ConfigError(f"{args.config}: unknown key {key!r}; allowed: {', '.join(_RECIPE_KEYS)}")
    if args.objective:
        objectives = parse_objectives(args.objective)
    elif "objective" in table:
        objectives = parse_objectives(table["objective"])
    elif "objectives" in table:
        objectives = objectives_from_tables(table["objectives"])
    else:
        raise ConfigError("no objective: give --objective (e.g. 'qed:max') or objectives in --config")

    methods = tuple(m.strip() for m in args.method.split(",")) if args.method else tuple(table.get("methods", ()))
    overrides = dict(table.get("optimize", {}))
    overrides.update(parse_pairs(args.set, "--set"))
    for key in ("budget", "batch_size", "seed", "min_similarity", "surrogate"):
        if getattr(args, key) is not None:
            overrides[key] = getattr(args, key)
    given = dict(overrides)
    methods, overrides = resolve_recipe(methods, overrides, from_leads=bool(args.seeds))
    for method in methods:
        if method not in OPTIMIZERS:
            raise ConfigError(f"unknown method {method!r}; choose from {', '.join(OPTIMIZERS)}")
    config = optimize_config_from_dict(overrides)
    method_configs = method_settings(given, methods, from_leads=bool(args.seeds))

    filters = filters_from_dict({**table.get("filters", {}), **parse_pairs(args.filter, "--filter")})
    tracking = build_dataclass(TrackingConfig, table.get("tracking", {}), "tracking",
                               base=TrackingConfig(experiment="molvae-optimize"))
    flags = {"enabled": False} if args.no_track else {}
    flags.update({key: value for key, value in (("uri", args.tracking_uri), ("experiment", args.experiment)) if value})
    return Recipe(tuple(objectives), methods, config, filters, dataclasses.replace(tracking, **flags), method_configs)


# --- output -----------------------------------------------------------------------------------

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


def write_campaign(campaign, out: Path) -> list[Path]:
    """The campaign's tables as CSV, its best molecules as a PNG grid and its curves as a PNG."""
    from molvae.report import molecule_grid_png

    tables = {"best.csv": campaign.best, "candidates.csv": campaign.candidates, "summary.csv": campaign.summary}
    if campaign.leads is not None:
        tables = {"leads.csv": campaign.leads, **tables}
    files = []
    for name, table in tables.items():
        table.to_csv(out / name, index=False)
        files.append(out / name)
    files.append(molecule_grid_png([s for s, _ in campaign.grid], out / "best.png", [legend for _, legend in campaign.grid]))
    config, first = campaign.config, campaign.objectives[0]
    if campaign.leads is not None:
        ylabel, title = ("mean improvement over seeds",
                         f"budget {config.budget} calls per seed, similarity >= {config.min_similarity}")
    else:
        ylabel = "best true score" if len(campaign.objectives) > 1 else f"best {first.label} ({first.goal})"
        title = f"budget {config.budget} calls per method"
    files.append(_curve_png(campaign.curves, out / "curve.png", ylabel, title))
    return files


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


# --- the command ------------------------------------------------------------------------------

def _tracker(tracking, run_name: str, parent=None):
    from molvae.tracking import MlflowTracker, NullTracker

    return MlflowTracker(tracking, run_name, parent=parent) if tracking.enabled else NullTracker()


def cmd_optimize(args: argparse.Namespace) -> int:
    """Run the optimization described by the flags (and ``--config``); write OUT/; print a summary."""
    import torch

    from molvae.optimize import run_campaign, settings_per_method
    from molvae.data import read_smiles_table
    from molvae.objectives import format_objectives

    recipe = load_recipe(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.shipped = "lead"  # the model that reads molecules and predicts their properties best
    model = load(args)
    seeds = None
    if args.seeds:
        seeds_table, column = read_smiles_table(args.seeds, args.smiles_column)
        seeds = seeds_table[column].tolist()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with _tracker(recipe.tracking, args.run_name or out.name) as parent:
        parent.log_params({"model": model.path})
        parent.link_model(model.path, model.loaded.meta)
        campaign = run_campaign(
            model.loaded, recipe.objectives, recipe.methods, recipe.config, recipe.filters, seeds,
            surrogate_data=args.surrogate_data, surrogate_data_column=args.surrogate_smiles_column,
            report_properties=[p for p in args.report_properties.split(",") if p], top=args.top,
            top_per_seed=args.top_per_seed, grid=args.grid, tracker=parent,
            child_run=lambda method: _tracker(recipe.tracking, method, parent=parent),
            method_configs=recipe.method_configs)
        files = write_campaign(campaign, out)
        table = campaign.summary.to_dict("records")
        summary = {"model": model.path, "objectives": format_objectives(recipe.objectives),
                   "methods": ",".join(recipe.methods), "seeds": args.seeds or "",
                   "optimize": dataclasses.asdict(recipe.config), "filters": dataclasses.asdict(recipe.filters),
                   "optimize_per_method": settings_per_method(recipe.method_configs, recipe.config),
                   "surrogate": campaign.surrogate, "results": table, "seconds": campaign.seconds}
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
        files.append(out / "summary.json")
        for path in files:
            parent.log_artifact(path)
    _print_summary(table)
    print(f"outputs in {out}/: " + ", ".join(sorted(p.name for p in files)))
    if parent.run_id:
        print(f"MLflow run {parent.run_id} in {recipe.tracking.resolved_uri()}")
    return 0


# --- the parser -------------------------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``optimize`` to molvae's subcommands; returns its parser."""
    p = subparsers.add_parser(
        "optimize", help="property-guided optimization in latent space (population search, gradient, BO, random)",
        description="Search the latent space for molecules that score well on OBJECTIVE, from random starts\n"
                    "or from your lead molecules (--seeds). Every candidate is decoded and scored with the real\n"
                    "RDKit objective under a hard budget of oracle calls. From random starts the population\n"
                    "search runs (batch 256, spread 1.0, 4 canonical decodes per point, a screen of 32 by the\n"
                    "calls so far, the model retrained every 5 rounds on the best molecules so far); around\n"
                    "leads the neighbourhood search, with gradient ascent and the random baseline beside it at\n"
                    "the same budget. Results are ranked by the true score.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="checkpoint written by `molvae train` (e.g. runs/exp1/model.pt); default: the "
                                   "lead model shipped with molvae, which reconstructs molecules and predicts their "
                                   "properties best (molvae/pretrained/MODEL_CARD.md)")
    p.add_argument("--objective", help="what to optimize, e.g. 'qed:max' or 'logp:window:2:3,sa:min' (see below)")
    p.add_argument("--config", help="TOML run file: objective/[[objectives]], methods, [optimize], [filters], "
                                    "[tracking] (see pipelines/recipes/optimize_*.toml); flags override it")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--method", help="comma-separated methods: gradient, bo, neighbourhood, random (default: "
                                    "neighbourhood; with --seeds: neighbourhood,gradient,random)")
    p.add_argument("--budget", type=Number(int, 1, 10**8), help="oracle calls per method (per seed with --seeds); default 1000")
    p.add_argument("--batch-size", type=BATCH, help="latent points per round (parallel starts, BO batch); default 32, "
                                                     "256 for the population search from random starts")
    p.add_argument("--seed", type=SEED, help="random seed (default 0)")
    p.add_argument("--seeds", help="CSV/SMI of lead molecules to optimize, one at a time from its own encoding")
    p.add_argument("--smiles-column", default="", help="SMILES column of --seeds (default: found by name)")
    p.add_argument("--min-similarity", type=FRACTION,
                   help="Tanimoto floor (Morgan radius 2) to each seed; nothing below it is returned (default 0)")
    p.add_argument("--surrogate", choices=["auto", "head", "ensemble", "none"],
                   help="property predictor on z: the model's joint head, an ensemble of 5 MLPs trained on "
                        "encoded molecules, or none (default auto: head if it predicts every objective; none for "
                        "the population search from random starts, which needs none)")
    p.add_argument("--surrogate-data", help="CSV to train the ensemble on (default: the model's training data); "
                                            "a numeric column named like an objective (e.g. 'qed') is used as "
                                            "its label, else the value is computed with RDKit / your scorer")
    p.add_argument("--surrogate-smiles-column", default="", help="SMILES column of --surrogate-data")
    p.add_argument("--filter", action="append", metavar="KEY=VALUE",
                   help="hard filter (repeatable): max_sa, no_pains, min_ring_size, max_ring_size, min_mw, max_mw")
    p.add_argument("--set", action="append", metavar="KEY=VALUE",
                   help="any [optimize] setting (repeatable), e.g. --set prior_weight=0.1 --set bo_acquisition=qucb")
    p.add_argument("--top", type=Number(int, 1, 10**7), default=100, help="molecules in best.csv (default 100)")
    p.add_argument("--top-per-seed", type=Number(int, 1, 10**6), default=3, help="with --seeds: molecules per seed in best.csv")
    p.add_argument("--grid", type=Number(int, 0, 1000), default=24, help="molecules drawn in best.png (default 24)")
    p.add_argument("--report-properties", default="qed,logp,sa,mw,plogp_raw",
                   help="extra RDKit properties written to best.csv (comma-separated)")
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")
    p.add_argument("--threads", type=THREADS, default=0, help="CPU threads for torch (0 = torch's default)")
    p.add_argument("--no-track", action="store_true", help="do not record MLflow runs")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--experiment", help="MLflow experiment (default molvae-optimize)")
    p.add_argument("--run-name", help="name of the parent MLflow run (default: the --out folder's name)")
    p.set_defaults(func=cmd_optimize)
    return p
