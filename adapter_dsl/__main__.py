"""``python -m adapter_dsl``: the ``adapter-dsl`` command line."""

import sys

from .cli import main

sys.exit(main())
