"""Model status for the model picker: are a network's weights here, and how to get them if not."""

from __future__ import annotations

from dataclasses import dataclass

from face3d_core.models.registry import get_spec, list_models
from face3d_core.weights import find_weights, offline, weights_cache_dir, weights_dir


@dataclass(frozen=True)
class ModelStatus:
    """Whether a depth model can run here, for the model picker.

    Attributes:
        name: Registry name.
        title: Human-readable name.
        ready: The weights file is on this machine.
        downloadable: Missing but downloads are allowed (it is fetched on first use).
        size_mb: Download size.
        file_name: Weights file name.
        url: Official download URL.
        folders: Where a manually downloaded file can be put.
        description: One line about the model.
    """

    name: str
    title: str
    ready: bool
    downloadable: bool
    size_mb: float
    file_name: str
    url: str
    folders: tuple[str, ...]
    description: str


def model_status(name: str) -> ModelStatus:
    """Return whether ``name``'s weights are here, and how to get them if not.

    Raises:
        UnknownModelError: ``name`` is not registered.
    """
    spec = get_spec(name)
    wf = spec.weights_file
    found = find_weights(wf)
    folders = tuple(str(p) for p in (weights_dir(), weights_cache_dir()) if p is not None)
    return ModelStatus(
        name=spec.name,
        title=spec.title,
        ready=found is not None,
        downloadable=found is None and not offline(),
        size_mb=float(spec.size_mb),
        file_name=wf.file_name,
        url=wf.url,
        folders=folders,
        description=spec.description,
    )


def all_model_status() -> list[ModelStatus]:
    """Status of every registered model, the default first."""
    return [model_status(name) for name in list_models()]
