"""What every entry point (the ``molvae`` command, the scripts in ``pipelines/``) does around its work:
process settings made before torch is imported, and bad input reported in one line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from molvae.errors import USER_ERRORS

__all__ = ["prepare_process", "run_script"]


def prepare_process() -> None:
    """Idle OpenMP threads sleep instead of spinning: on a busy 2-core machine spinning threads made CPU
    training up to a hundred times slower (measured). Takes effect only before torch is imported."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def run_script(main: Callable[[], int | None], name: str | None = None) -> None:
    """Run a script's ``main`` and exit: bad input ends in ``NAME: error: ...`` and exit code 2,
    Ctrl-C in exit code 130."""
    name = name or os.path.basename(sys.argv[0])
    prepare_process()
    try:
        code = main()
    except KeyboardInterrupt:
        print(f"{name}: aborted", file=sys.stderr)
        sys.exit(130)
    except USER_ERRORS as err:
        if os.environ.get("MOLVAE_DEBUG"):
            raise
        print(f"{name}: error: {err}", file=sys.stderr)
        sys.exit(2)
    sys.exit(code or 0)
