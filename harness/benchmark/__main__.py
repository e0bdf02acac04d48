"""``python -m harness.benchmark SPEC``: run one case (see :mod:`.measure`)."""
import sys

from .measure import main

sys.exit(main())
