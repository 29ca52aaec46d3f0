"""``python -m capstone.cbt``: the cbt command (see ``capstone/cbt/__init__.py``)."""

import sys

from part1_overview import run_cli

from . import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
