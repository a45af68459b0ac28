"""What every ``molvae`` command shares: the parser class, numeric option types that refuse bad
values before any work starts, the model and input options, logging, Ctrl-C handling and tables."""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import threading
from collections.abc import Iterator
from typing import NoReturn

from molvae.ranges import Range

log = logging.getLogger("molvae")

__all__ = ["Number", "Parser", "graceful_stop", "input_args", "load", "model_args", "print_table",
           "read_smiles", "setup_logging", "write_rejected"]


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors: ``molvae sample: error: argument -n: must be ... (see --help)``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Number(Range):
    """An option type: a number within its range (:class:`molvae.ranges.Range`), else argparse's
    one-line error ``argument -n: must be a whole number >= 1, got '0'``.

    >>> Number(int, 1)("5"), Number(float, 0, 1)("0.25")
    (5, 0.25)
    >>> Number(int, 1)("0")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: must be a whole number >= 1, got '0'
    """

    @property
    def __name__(self) -> str:  # argparse names the type in some messages
        return self.kind.__name__

    def __call__(self, text: str) -> int | float:
        try:
            return self.parse(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None


# The ranges molvae's options accept: above them a run would not finish, or means nothing.
COUNT = Number(int, 1, 10**8)  # molecules to produce or read
SEED = Number(int, 0, 2**63 - 1)
BATCH = Number(int, 1, 10**6)
STEPS = Number(int, 1, 10**7)
THREADS = Number(int, 0, 4096)  # 0 = torch's default
SPREAD = Number(float, 0, 100, low_open=True)
TEMPERATURE = Number(float, 0, 100)  # 0 = greedy
FRACTION = Number(float, 0, 1)
REFINE = Number(int, 0, 10**4)


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    root = logging.getLogger("molvae")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


@contextlib.contextmanager
def graceful_stop() -> Iterator[threading.Event]:
    """First Ctrl-C / SIGTERM asks the run to save and stop; a second one aborts at once."""
    stop = threading.Event()

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("received %s: saving a checkpoint and stopping (again to abort)", signal.Signals(signum).name)
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def model_args(p: argparse.ArgumentParser, shipped: str = "sampling") -> None:
    """``--model`` and ``--device``; ``shipped``: the model molvae ships that the command uses without --model."""
    p.add_argument("--model", help="checkpoint written by `molvae train` (e.g. runs/exp1/model.pt); default: "
                                   f"the {shipped} model shipped with molvae (molvae/pretrained/MODEL_CARD.md)")
    p.set_defaults(shipped=shipped)
    p.add_argument("--device", default="auto", help="auto (GPU if present), cpu, cuda or cuda:N")


def input_args(p: argparse.ArgumentParser, name: str = "--input") -> None:
    p.add_argument(name, required=True, help="CSV/TSV/.smi file (gzip allowed) with a SMILES column")
    p.add_argument("--smiles-column", default="", help="name of the SMILES column (default: found by name)")


def load(args: argparse.Namespace, device: str | None = None):
    """The :class:`molvae.Model` of ``--model``, or the shipped model the command defaults to."""
    from molvae.api import SHIPPED
    from molvae.api import load as load_model

    if not args.model:
        log.info("no --model given: using the shipped %s model %s (see MODEL_CARD.md beside it)", args.shipped,
                 SHIPPED[args.shipped])
    return load_model(args.model or args.shipped, device or args.device)


def read_smiles(path: str, column: str = "") -> list[str]:
    from molvae.data import read_smiles_table

    table, smiles_column = read_smiles_table(path, column)
    return table[smiles_column].tolist()


def split_rejected(frame):
    """A frame from the API (every input row) as the CLI writes it: the rows read, without
    ``reason``/``detail``, and the rejected rows with them."""
    rejected = frame["reason"].notna()
    kept = frame[~rejected].drop(columns=["reason", "detail"]).reset_index(drop=True)
    return kept, frame.loc[rejected, ["row", "input", "reason", "detail"]].reset_index(drop=True)


def write_rejected(rejected, out) -> None:
    if len(rejected):
        path = out.with_name(out.stem + "_rejected.csv")
        rejected.to_csv(path, index=False)
        log.info("%d input rows could not be read; reasons in %s", len(rejected), path)


def print_table(title: str, metrics: dict[str, float]) -> None:
    width = max(len(k) for k in metrics) if metrics else 0
    print(f"\n{title}")
    print("-" * (width + 14))
    for key, value in metrics.items():
        print(f"{key:<{width}}  {value:>10.4f}" if isinstance(value, float) else f"{key:<{width}}  {value:>10}")
    print()
