"""`python -m mtl_hf ...` is the same as `mtl-hf ...`."""

import sys

from .cli import main

sys.exit(main())
