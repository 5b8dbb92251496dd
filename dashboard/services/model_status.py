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


@dataclass(frozen=True)
class PrecisionChoices:
    """The precisions the pickers offer on this server (decided once per process: the CPU does not change).

    Attributes:
        options: ``value -> label``, exact first (``{"fp32": "Exact (fp32)", "bf16": "Fast (bf16)"}``
            where the CPU has native bfloat16).
        default: What is chosen at first: ``FACE3D_PRECISION`` where it is offered (``auto``: fp16 on
            CUDA), else ``fp32``.
        unavailable: Why the fast mode is not offered (None where it is).
    """

    options: dict[str, str]
    default: str
    unavailable: str | None = None


#: What the picker says where the fast mode cannot be offered.
NO_FAST_MODE = "Fast (bf16) needs a CPU with native bfloat16 (AVX512-BF16 or AMX); this server's has none."


def precision_choices_here() -> PrecisionChoices:
    """The precisions this machine offers (see :func:`face3d_core.models.estimator.precision_choices`)."""
    from face3d_core.config import get_settings
    from face3d_core.models.estimator import precision_choices

    options = precision_choices()
    wanted = get_settings().precision
    if wanted == "auto":  # as the estimator reads it: fp16 on CUDA, exact elsewhere
        wanted = "fp16" if "fp16" in options else "fp32"
    default = wanted if wanted in options else "fp32"
    return PrecisionChoices(options, default, None if len(options) > 1 else NO_FAST_MODE)


def precision_note(precision: str, runtime: str | None = None) -> str:
    """One line under the picker about the chosen precision (empty for exact before any run here).

    Args:
        precision: The chosen precision.
        runtime: What ran this model in that precision most recently in this process, with its
            measured deviation from fp32 (:meth:`RuntimeReport.describe`), where known.
    """
    if precision == "fp32":
        text = ""
    else:
        text = (
            f"Fast ({precision}): native {precision} arithmetic, faster; the depth map differs slightly from "
            "Exact, measured against it for every input size before use."
        )
    if runtime:
        text += f" Last run: {runtime}."
    return text.strip()
