"""face3d core library: photo of a face -> relative depth -> 3D face.

Pure Python/numpy/torch; nothing here imports Dash. See ``docs/architecture.md``.
"""

__version__ = "0.1.0"
