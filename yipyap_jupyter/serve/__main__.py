"""`python -m yipyap_jupyter.serve`: the same as `yipyap-serve`."""

import sys

from .cli import main

sys.exit(main())
