"""``python -m unianimate_core ...``: the headless command line (see unianimate_core/pipeline/cli.py)."""
import sys

from .pipeline.cli import main

if __name__ == "__main__":
    sys.exit(main())
