"""``molvae <command>``: argument parsing, logging set-up and file output over the Python API
(:mod:`molvae.api`). One module per command group; each registers its subcommands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from molvae.cli import generate, latent, models, optimize, tools
from molvae.cli.common import Parser, setup_logging

__all__ = ["build_parser", "main"]

EPILOG = """examples:
  molvae sample -n 1000 --out samples.csv
  molvae train --data my.csv --config pipelines/recipes/quickstart.toml --out runs/exp1
  molvae sample --model runs/exp1/model.pt -n 10000 --out samples.csv
  molvae evaluate samples.csv --train my.csv
  molvae optimize --objective qed:max --budget 1000 --out opt/
  mlflow ui --backend-store-uri sqlite:///mlflow.db
"""


def build_parser() -> Parser:
    """The whole command line; imports nothing heavy (argparse only)."""
    parser = Parser(
        prog="molvae",
        description="Train a SELFIES GRU VAE on your molecules, generate novel valid ones, and steer them "
                    "toward target properties. Every training run is tracked in MLflow.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    for group in (models, generate, latent, optimize, tools):
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from molvae.entry import prepare_process

    prepare_process()  # before torch is imported
    from molvae.errors import USER_ERRORS

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, or a bad option (a one-line message is printed): its exit code
        return done.code if isinstance(done.code, int) else 2
    setup_logging(args.verbose)
    try:
        return args.func(args)
    except USER_ERRORS as err:
        if args.verbose or os.environ.get("MOLVAE_DEBUG"):
            raise
        print(f"molvae {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"molvae {args.command}: aborted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
