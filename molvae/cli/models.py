"""``molvae train``, ``fit-prior`` and ``fit-head``: making a model and refitting its parts."""

from __future__ import annotations

import argparse
import os

from molvae.cli.common import COUNT, SEED, SPREAD, STEPS, Number, graceful_stop, load, model_args, print_table, \
    read_smiles


def cmd_train(args: argparse.Namespace) -> int:
    from molvae.api import train

    settings = list(args.set or [])
    if args.device:
        settings.append(f"train.device={args.device}")
    if args.epochs is not None:
        settings.append(f"train.epochs={args.epochs}")
    if args.tracking_uri:
        settings.append(f'tracking.uri="{args.tracking_uri}"')
    if args.register:
        settings.append(f'tracking.register="{args.register}"')
    with graceful_stop() as stop:
        _, figures = train(args.data, args.config, args.out, resume=args.resume, track=not args.no_track,
                           settings=settings, stop=stop)
    if os.environ.get("RANK", "0") != "0":
        return 0
    training = figures["training"]
    print_table("data", figures["data"])
    print_table("training", {k: v for k, v in training.items() if k != "best_val_loss"})
    if figures["samples"]:
        print_table(f"{figures['samples']['n']:.0f} prior samples from the best model", figures["samples"])
    print(f"outputs in {figures['out']}/: " + ", ".join(figures["files"]))
    mlflow = figures["mlflow"]
    if mlflow["run_id"]:
        print(f"MLflow run {mlflow['run_id']} in {mlflow['uri']} (mlflow ui --backend-store-uri {mlflow['uri']})")
        if mlflow["model_uri"]:
            registered = f", registered as {mlflow['registered']}" if mlflow["registered"] else ""
            print(f"MLflow model {mlflow['model_uri']}{registered}")
    return 130 if training["stop_reason"] == "interrupted" else 0


def cmd_fit_prior(args: argparse.Namespace) -> int:
    model = load(args, "cpu")
    smiles = read_smiles(args.data, args.smiles_column) if args.data else None
    fitted, figures = model.fit_prior(smiles, kind=args.kind, count=args.count, spread=args.spread, steps=args.steps,
                                      seed=args.seed, source=args.data)
    fitted.save(args.out)
    if args.kind == "exemplars":
        print(f"exemplar prior: posteriors of {figures['exemplars']} molecules, spread {figures['spread']}; "
              f"wrote {args.out}")
    else:
        print(f"prior fitted on {figures['molecules']:.0f} molecules: held-out log p(z) "
              f"{figures['held_out_log_prob_before']:.1f} -> {figures['held_out_log_prob_after']:.1f} nats; "
              f"wrote {args.out}")
    return 0


def cmd_fit_head(args: argparse.Namespace) -> int:
    model = load(args, "cpu")
    smiles = read_smiles(args.data, args.smiles_column) if args.data else None
    names = [p.strip() for p in args.properties.split(",") if p.strip()] if args.properties else None
    fitted, figures = model.fit_head(smiles, properties=names, count=args.count, exclude=args.exclude,
                                     hidden=args.hidden, layers=args.layers, epochs=args.epochs, workers=args.workers,
                                     seed=args.seed, cache=args.cache, source=args.data)
    fitted.save(args.out)
    print(f"property head fitted on {figures['train_molecules']:,.0f} encoded molecules (best epoch "
          f"{figures['best_epoch']:.0f} of {figures['epochs']:.0f}), {figures['validation_molecules']:,.0f} held out; "
          f"dropped: {figures['dropped_not_encoded']:,.0f} not readable by the model, "
          f"{figures['dropped_not_scored']:,.0f} not scored, {figures['dropped_excluded']:,.0f} excluded")
    print(f"{'property':<12} {'R2 before':>10} {'R2 now':>8} {'MAE now':>8}")
    for name in fitted.properties:
        before = figures.get(f"old_r2_{name}")
        print(f"{name:<12} {'-' if before is None else f'{before:.3f}':>10} {figures[f'val_r2_{name}']:8.3f} "
              f"{figures[f'val_mae_{name}']:8.3f}")
    print(f"wrote {args.out}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a model on a SMILES file; samples and evaluates the best model",
                       description="Clean and encode the data, train the VAE with checkpoints (model.pt = best, "
                                   "last.pt = latest), then sample from the best model and write the outputs. "
                                   "Ctrl-C saves and stops; --resume continues exactly where it stopped.")
    p.add_argument("--data", help="CSV/TSV/.smi of SMILES (default: the bundled MOSES sample)")
    p.add_argument("--config", help="TOML run configuration (see pipelines/recipes/*.toml)")
    p.add_argument("--out", required=True, help="output folder for checkpoints, samples, plots and reports")
    p.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override a config key (repeatable)")
    p.add_argument("--epochs", type=Number(int, 1, 10**6), help="shortcut for --set train.epochs=N")
    p.add_argument("--device", help="shortcut for --set train.device=...")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt")
    p.add_argument("--no-track", action="store_true", help="do not record an MLflow run")
    p.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite:///mlflow.db)")
    p.add_argument("--register", metavar="NAME", help="add the trained model to the MLflow model registry as NAME")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("fit-prior", help="fit the sampling prior to where the encoder puts molecules (after training)",
                       description="Give a trained model a sampling prior fitted to where its encoder puts molecules "
                                   "(default: the training sample the checkpoint carries), encoder and decoder "
                                   "frozen. --kind exemplars (what `molvae train` now does itself): sampling draws "
                                   "from the posteriors of --count of those molecules, widened by --spread. --kind "
                                   "flow: a RealNVP prior fitted to draws of those posteriors. Writes a new checkpoint.")
    model_args(p)
    p.add_argument("--kind", choices=("exemplars", "flow"), default="exemplars", help="default: exemplars")
    p.add_argument("--count", type=COUNT,
                   help="exemplars: molecules whose posteriors are kept (default: model.exemplars of `molvae train`)")
    p.add_argument("--spread", type=SPREAD,
                   help="exemplars: factor on their posterior standard deviations; higher = more novel, less like "
                        "the data (default: model.exemplar_spread of `molvae train`)")
    p.add_argument("--data", help="SMILES file to draw molecules from (default: the checkpoint's training sample)")
    p.add_argument("--smiles-column", default="", help="name of the SMILES column (default: found by name)")
    p.add_argument("--steps", type=STEPS, default=3000, help="flow: optimizer steps of 1,024 draws (default 3000)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.set_defaults(func=cmd_fit_prior)

    p = sub.add_parser("fit-head", help="refit the property head on many encoded molecules (after training)",
                       description="Give a trained model a property head fitted on the encodings of many molecules "
                                   "(encoder and decoder frozen): their encoder means and RDKit values are computed "
                                   "once, an MLP is trained with a held-out split and early stopping, and the "
                                   "held-out R2 of the old and the new head is printed. `molvae optimize` follows "
                                   "the head for the objectives it covers. Writes a new checkpoint.")
    model_args(p, "lead")
    p.add_argument("--data", help="SMILES file to draw molecules from (default: the checkpoint's training sample; "
                                  "tens of thousands of molecules or more for a good head)")
    p.add_argument("--smiles-column", default="", help="name of the SMILES column (default: found by name)")
    p.add_argument("--count", type=Number(int, 20, 10**8), default=200000,
                   help="molecules drawn at random from --data (default 200000)")
    p.add_argument("--exclude", help="SMILES file whose molecules (standardized alike) are left out: a test set")
    p.add_argument("--properties", help="comma-separated RDKit properties (default: the model's head, else "
                                        "qed,plogp_raw,logp,sa)")
    p.add_argument("--hidden", type=Number(int, 1, 65536), default=256, help="width of the hidden layers (default 256)")
    p.add_argument("--layers", type=Number(int, 1, 64), default=2, help="hidden layers (default 2)")
    p.add_argument("--epochs", type=Number(int, 1, 10**5), default=60,
                   help="at most this many epochs; the best is kept (default 60)")
    p.add_argument("--workers", type=Number(int, 0, 4096), default=0,
                   help="processes standardizing and scoring the molecules (default 0: all cores)")
    p.add_argument("--cache", help="file keeping the encodings and property values: a later call with the same "
                                   "model, molecules and properties reuses them (e.g. to try another --hidden)")
    p.add_argument("--seed", type=SEED, default=0)
    p.add_argument("--out", required=True, help="checkpoint to write")
    p.set_defaults(func=cmd_fit_head)
