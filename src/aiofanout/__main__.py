"""``python -m aiofanout``: see ``python -m aiofanout --help``."""

import sys

from ._cli import main

sys.exit(main())
