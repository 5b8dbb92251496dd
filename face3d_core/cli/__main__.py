"""``python -m face3d_core.cli``."""

import sys

from face3d_core.cli import main

sys.exit(main())
