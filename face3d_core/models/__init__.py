"""Depth networks: registry of specs, builders, preprocessing and the estimator.

Importing this package is cheap (no torch); use ``face3d_core.models.estimator`` for inference.
"""

from face3d_core.models.registry import DEFAULT_MODEL, ModelSpec, get_spec, list_models

__all__ = ["DEFAULT_MODEL", "ModelSpec", "get_spec", "list_models"]
