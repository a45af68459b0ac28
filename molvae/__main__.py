"""``python -m molvae ...``: the same as the ``molvae`` command (handy under ``torchrun -m molvae``)."""

import sys

from molvae.cli import main

if __name__ == "__main__":
    sys.exit(main())
