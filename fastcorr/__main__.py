"""``python -m fastcorr``: the same as the ``fastcorr`` command."""

import sys

from .cli import main

if __name__ == "__main__":  # (importing the module, as documentation tools do, runs nothing)
    sys.exit(main())
