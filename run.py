#!/usr/bin/env python3
"""rmail: `python run.py` starts the console; `python run.py --help` lists the commands.

Run with any Python 3.11+: started outside a virtualenv, it re-executes itself with the
checkout's .venv (made by `make install`) when there is one, or says in one line what to run.
"""

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
VENV_PYTHON = HERE / ".venv" / "bin" / "python"


def _in_venv() -> bool:
    return Path(sys.prefix).resolve() == (HERE / ".venv").resolve()


if __name__ == "__main__":
    if sys.version_info < (3, 11):
        sys.exit(f"rmail needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if VENV_PYTHON.exists() and not _in_venv() and not os.environ.get("VIRTUAL_ENV"):
        os.execv(str(VENV_PYTHON), [str(VENV_PYTHON), str(Path(__file__).resolve()), *sys.argv[1:]])
    try:
        from rmail.cli import main
        code = main()
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] == "rmail":
            raise
        sys.exit(f"rmail: {exc.name} is not installed for {sys.executable}; run `make install` in {HERE} "
                 "(or `make run`), then `python3 run.py` again")
    sys.exit(code)
