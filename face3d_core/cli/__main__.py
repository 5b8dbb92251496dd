"""``python -m face3d_core.cli`` (the same as the ``face3d`` command)."""

from face3d_core.cli import console_main

console_main()
