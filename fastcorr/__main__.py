"""``python -m fastcorr``: the same as the ``fastcorr`` command."""

import sys

from .cli import main

sys.exit(main())
