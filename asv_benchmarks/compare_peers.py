"""Retired in favour of ``fastcorr bench`` (``fastcorr/bench.py``): this runs it.

usage: python asv_benchmarks/compare_peers.py [fastcorr bench options, e.g. --quick]

The old ``--size N`` is passed on as ``--image-size N``; see ``fastcorr bench --help``.
"""

import sys
from pathlib import Path

try:
    from fastcorr.bench import main
except ImportError:  # run from a checkout without installing fastcorr
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from fastcorr.bench import main

if __name__ == "__main__":
    argv = [a.replace("--size", "--image-size", 1) if a.split("=")[0] == "--size" else a
            for a in sys.argv[1:]]
    sys.exit(main(argv))
