"""`python -m toy_models ...`: the project's command line (see toy_models/cli.py)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
