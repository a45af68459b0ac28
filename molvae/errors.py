"""Errors a user can cause, and how every entry point reports them: one line, a non-zero exit,
no traceback (set ``MOLVAE_DEBUG=1`` to see it)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["UserError", "run_script", "user_errors"]


class UserError(Exception):
    """An error caused by the user's input; printed without a traceback."""


def user_errors() -> tuple[type[BaseException], ...]:
    """The exception types that mean "bad input", not "bug": reported in one line."""
    from molvae.checkpoint import CheckpointError
    from molvae.config import ConfigError
    from molvae.data import DataError
    from molvae.train import TrainingDiverged

    return (UserError, ConfigError, DataError, CheckpointError, TrainingDiverged, ValueError, FileNotFoundError,
            PermissionError, RuntimeError)


def run_script(main: Callable[[], int | None], name: str | None = None) -> None:
    """Run a script's ``main`` and exit: bad input ends in ``NAME: error: ...`` and exit code 2,
    Ctrl-C in exit code 130."""
    name = name or os.path.basename(sys.argv[0])
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see molvae.cli.main
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{name}: aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as err:
        if os.environ.get("MOLVAE_DEBUG") or not isinstance(err, user_errors()):
            raise
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
