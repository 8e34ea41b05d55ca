"""``python -m assay.cli ...``: how ``--nproc`` starts each rank under torchrun."""

import sys

from assay.cli import main

if __name__ == "__main__":
    sys.exit(main())
