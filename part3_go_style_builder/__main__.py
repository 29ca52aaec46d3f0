"""``python -m part3_go_style_builder``: cbt in Python (see cli.py; ``lab start DIR`` is the lab)."""

import sys

from part1_overview import run_cli

from .cli import main

if __name__ == "__main__":
    sys.exit(run_cli(main))
