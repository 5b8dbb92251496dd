"""The model registry: every depth network described once, as data.

A :class:`ModelSpec` holds where a network's weights live (URL, file name, SHA-256),
how its input must be prepared (size, resize mode, normalisation) and which function
builds the architecture. Nothing here imports torch, so listing models is cheap.

Example:
    >>> from face3d_core.models.registry import get_spec
    >>> get_spec("midas_v21_small_256").net_size
    (256, 256)
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from face3d_core.errors import UnknownModelError, shown_value
from face3d_core.weights import WeightsFile

if TYPE_CHECKING:  # pragma: no cover
    import torch

ResizeMode = Literal["upper_bound", "minimal", "lower_bound", "square"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)

_MIDAS_RELEASES = "https://github.com/isl-org/MiDaS/releases/download"


@dataclass(frozen=True)
class ModelSpec:
    """Everything face3d needs to know about one depth network.

    Attributes:
        name: Registry name, as upstream (``midas_v21_small_256``).
        title: Short human-readable name for menus.
        builder: ``"module:function"`` returning the bare architecture (random init, no download).
        url: Where the official checkpoint is downloaded from.
        file_name: File name of the checkpoint in a weights or cache directory.
        sha256: Full SHA-256 of the official checkpoint, or ``None`` where not published.
        size_mb: Approximate download size in megabytes (for menus and messages).
        net_size: Network input size ``(height, width)`` in pixels.
        resize_mode: ``upper_bound`` (fit inside), ``minimal`` (scale as little as possible),
            ``lower_bound`` (cover), all keeping the aspect ratio; ``square`` ignores it.
        multiple_of: Sides of the resized input are rounded to a multiple of this.
        mean: Per-channel RGB mean subtracted after scaling to [0, 1].
        std: Per-channel RGB standard deviation divided by after the mean.
        upsample_mode: Interpolation of the prediction back to the image size (MiDaS' ``run.py``:
            bicubic; Depth Anything V2's ``infer_image``: bilinear).
        upsample_align_corners: ``align_corners`` of that interpolation (MiDaS: False, DA V2: True).
        cpu_runtimes: Compiled runtimes for CPU inference, preferred first (``openvino``,
            ``onnxruntime``), where ``benchmarks/depth_speed.py`` measured them faster than
            PyTorch at fp32 tolerance; PyTorch is the last resort. Each is checked against
            PyTorch per input shape.
        export_dynamic: The network's graph follows the input size, so one ONNX export with
            dynamic height/width serves every size; False exports once per input size (networks
            whose forward pass computes shape-dependent constants in Python).
        license: Licence of the official weights.
        description: One line for ``face3d models`` and the UI.
        short_title: The name in titles and table columns where space is short (``MiDaS small``);
            :attr:`label` falls back to :attr:`title`.
    """

    name: str
    title: str
    builder: str
    url: str
    file_name: str
    sha256: str | None
    size_mb: float
    net_size: tuple[int, int]
    resize_mode: ResizeMode
    multiple_of: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    upsample_mode: Literal["bicubic", "bilinear"] = "bicubic"
    upsample_align_corners: bool = False
    cpu_runtimes: tuple[str, ...] = ("openvino",)
    export_dynamic: bool = True
    license: str = "MIT"
    description: str = ""
    short_title: str = ""

    @property
    def label(self) -> str:
        """The short name for titles and columns (e.g. ``"DPT-Hybrid"``)."""
        return self.short_title or self.title

    @property
    def weights_file(self) -> WeightsFile:
        """The checkpoint as a :class:`~face3d_core.weights.WeightsFile` (for lookup/download)."""
        return WeightsFile(file_name=self.file_name, url=self.url, sha256=self.sha256, size_mb=self.size_mb)

    def build(self) -> torch.nn.Module:
        """Build the bare architecture (random weights, nothing downloaded)."""
        module_name, func_name = self.builder.split(":")
        module = importlib.import_module(module_name)
        return getattr(module, func_name)()


def _midas(name: str, tag: str, **kwargs) -> ModelSpec:
    return ModelSpec(name=name, url=f"{_MIDAS_RELEASES}/{tag}/{name}.pt", file_name=f"{name}.pt", **kwargs)


_SPECS: tuple[ModelSpec, ...] = (
    _midas(
        "midas_v21_small_256",
        "v2_1",
        title="MiDaS v2.1 small (256)",
        short_title="MiDaS small",
        builder="face3d_core.models.midas_small:build_midas_v21_small_256",
        sha256="70d6b9c891758c67f974a6097fb0c608c7ee67fb81ac3e5588847d5596d56fca",
        size_mb=81.8,
        net_size=(256, 256),
        resize_mode="upper_bound",
        multiple_of=32,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        cpu_runtimes=("openvino", "onnxruntime"),
        description="Fast EfficientNet-Lite3 network; the default, good on CPU.",
    ),
    _midas(
        "dpt_swin2_tiny_256",
        "v3_1",
        title="MiDaS v3.1 Swin2-T (256)",
        short_title="Swin2-T",
        builder="face3d_core.models.dpt:build_dpt_swin2_tiny_256",
        sha256=None,
        size_mb=165.0,
        net_size=(256, 256),
        resize_mode="square",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        description="Swin-V2 tiny transformer; a good speed/quality balance.",
    ),
    _midas(
        "dpt_levit_224",
        "v3_1",
        title="MiDaS v3.1 LeViT (224)",
        short_title="LeViT",
        builder="face3d_core.models.dpt:build_dpt_levit_224",
        sha256=None,
        size_mb=195.0,
        net_size=(224, 224),
        resize_mode="square",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        description="LeViT hybrid; the fastest of the v3.1 transformers.",
    ),
    _midas(
        "dpt_hybrid_384",
        "v3",
        title="MiDaS v3.0 DPT-Hybrid (384)",
        short_title="DPT-Hybrid",
        builder="face3d_core.models.dpt:build_dpt_hybrid_384",
        sha256=None,
        size_mb=470.0,
        net_size=(384, 384),
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        description="ViT-Hybrid (ResNet-50 + ViT-B/16); sharper than the small model.",
    ),
    _midas(
        "dpt_large_384",
        "v3",
        title="MiDaS v3.0 DPT-Large (384)",
        short_title="DPT-Large",
        builder="face3d_core.models.dpt:build_dpt_large_384",
        sha256=None,
        size_mb=1280.0,
        net_size=(384, 384),
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        description="ViT-L/16; high quality, slow on CPU.",
    ),
    _midas(
        "dpt_beit_large_512",
        "v3_1",
        title="MiDaS v3.1 BEiT-L (512)",
        short_title="BEiT-L 512",
        builder="face3d_core.models.dpt:build_dpt_beit_large_512",
        sha256=None,
        size_mb=1340.0,
        net_size=(512, 512),
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        export_dynamic=False,  # relative-position index built in Python per patch grid
        description="BEiT-L/16 at 512 px; the most accurate MiDaS, best on a GPU.",
    ),
    _midas(
        "dpt_beit_large_384",
        "v3_1",
        title="MiDaS v3.1 BEiT-L (384)",
        short_title="BEiT-L 384",
        builder="face3d_core.models.dpt:build_dpt_beit_large_384",
        sha256=None,
        size_mb=1340.0,
        net_size=(384, 384),
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        export_dynamic=False,  # relative-position index built in Python per patch grid
        description="BEiT-L/16 at 384 px.",
    ),
    _midas(
        "dpt_beit_base_384",
        "v3_1",
        title="MiDaS v3.1 BEiT-B (384)",
        short_title="BEiT-B",
        builder="face3d_core.models.dpt:build_dpt_beit_base_384",
        sha256=None,
        size_mb=430.0,
        net_size=(384, 384),
        resize_mode="minimal",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        export_dynamic=False,  # relative-position index built in Python per patch grid
        description="BEiT-B/16 at 384 px.",
    ),
    _midas(
        "dpt_swin2_base_384",
        "v3_1",
        title="MiDaS v3.1 Swin2-B (384)",
        short_title="Swin2-B",
        builder="face3d_core.models.dpt:build_dpt_swin2_base_384",
        sha256=None,
        size_mb=420.0,
        net_size=(384, 384),
        resize_mode="square",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        description="Swin-V2 base at 384 px.",
    ),
    _midas(
        "dpt_swin2_large_384",
        "v3_1",
        title="MiDaS v3.1 Swin2-L (384)",
        short_title="Swin2-L",
        builder="face3d_core.models.dpt:build_dpt_swin2_large_384",
        sha256=None,
        size_mb=840.0,
        net_size=(384, 384),
        resize_mode="square",
        multiple_of=32,
        mean=HALF_MEAN,
        std=HALF_STD,
        description="Swin-V2 large at 384 px.",
    ),
    ModelSpec(
        name="depth_anything_v2_vits",
        title="Depth Anything V2 Small (518)",
        short_title="Depth Anything V2 S",
        builder="face3d_core.models.depth_anything:build_depth_anything_v2_vits",
        url="https://huggingface.co/depth-anything/Depth-Anything-V2-Small/resolve/main/depth_anything_v2_vits.pth",
        file_name="depth_anything_v2_vits.pth",
        sha256="715fade13be8f229f8a70cc02066f656f2423a59effd0579197bbf57860e1378",
        size_mb=94.6,
        net_size=(518, 518),
        resize_mode="lower_bound",
        multiple_of=14,
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        license="Apache-2.0",
        export_dynamic=False,  # the position embedding's resize factors are Python floats of the size
        upsample_mode="bilinear",
        upsample_align_corners=True,
        description="DINOv2-S + DPT head; detailed relative depth (Apache-2.0).",
    ),
)

_REGISTRY: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}

DEFAULT_MODEL = "midas_v21_small_256"


def list_models() -> list[str]:
    """Return the registered model names, the default first."""
    return list(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    """Return the spec of a registered model.

    Raises:
        UnknownModelError: ``name`` is not registered; the message lists the known names.
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownModelError(
            f"Unknown depth model {shown_value(name)}. Known models: {', '.join(_REGISTRY)}."
        ) from None
