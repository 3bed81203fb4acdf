#!/usr/bin/env python3
"""rmail: `python run.py` starts the console; `python run.py --help` lists the commands."""

import sys

from rmail.cli import main

if __name__ == "__main__":
    sys.exit(main())
