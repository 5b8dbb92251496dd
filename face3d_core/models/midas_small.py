"""MiDaS v2.1 small (``midas_v21_small_256``): EfficientNet-Lite3 encoder and RefineNet decoder.

The network is assembled from timm's ``tf_efficientnet_lite3`` (random init, nothing
downloaded) and a small decoder written here. Module names follow the official
``MidasNet_small`` so that the official checkpoint ``midas_v21_small_256.pt`` loads with
``strict=True``:

* ``pretrained.layer1`` ... ``pretrained.layer4``: the encoder, split after EfficientNet
  stages 1, 2, 4 and 6 (strides 4, 8, 16, 32; 32, 48, 136 and 384 channels).
* ``scratch.layer{1..4}_rn``: 3x3 convolutions to 64, 128, 256 and 512 channels.
* ``scratch.refinenet{4..1}``: fusion blocks, each doubling the resolution and halving the
  channels.
* ``scratch.output_conv``: the head, back to full resolution and one non-negative channel.

The forward pass is plain module calls with no reshapes or Python-side copies, so it works
unchanged with ``channels_last`` inputs and under ``torch.autocast``.

Example:
    >>> import torch
    >>> from face3d_core.models.midas_small import build_midas_v21_small_256
    >>> net = build_midas_v21_small_256().eval()
    >>> with torch.inference_mode():
    ...     net(torch.zeros(1, 3, 192, 256)).shape
    torch.Size([1, 192, 256])
"""

from __future__ import annotations

import timm
import torch
from torch import nn
from torch.nn import functional as F

from face3d_core.models.blocks import ResidualConvUnit

__all__ = ["MidasSmall", "build_midas_v21_small_256"]

#: Sides of the input must be a multiple of this (the encoder's total stride).
INPUT_MULTIPLE = 32

_FEATURES = 64
_ENCODER_CHANNELS = (32, 48, 136, 384)


class FusionBlock(nn.Module):
    """Decoder step: add the refined skip features, refine, upsample 2x, project.

    Args:
        channels: Channels of the incoming path and of the skip features.
        out_channels: Channels after the final 1x1 projection.
    """

    def __init__(self, channels: int, out_channels: int) -> None:
        super().__init__()
        self.out_conv = nn.Conv2d(channels, out_channels, kernel_size=1)
        self.resConfUnit1 = ResidualConvUnit(channels)  # noqa: N815 - official key name
        self.resConfUnit2 = ResidualConvUnit(channels)  # noqa: N815 - official key name

    def forward(self, path: torch.Tensor, skip: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse and upsample.

        Args:
            path: ``(B, C, h, w)`` features coming from the coarser level.
            skip: ``(B, C, h, w)`` encoder features of this level, or ``None`` for the coarsest.

        Returns:
            ``(B, out_channels, 2h, 2w)`` features.
        """
        if skip is not None:
            path = path + self.resConfUnit1(skip)
        path = self.resConfUnit2(path)
        path = F.interpolate(path, scale_factor=2, mode="bilinear", align_corners=True)
        return self.out_conv(path)


class EfficientNetLite3Encoder(nn.Module):
    """timm's ``tf_efficientnet_lite3`` cut into the four levels MiDaS uses.

    ``layer1`` is ``(conv_stem, bn1, Identity, block stage 0, block stage 1)``: timm folds
    the stem's ReLU6 into ``bn1``, the ``Identity`` keeps the official indices (the
    official wrapper has a separate activation module there). Strided convolutions use
    TensorFlow "same" padding like the official exportable model.
    """

    def __init__(self) -> None:
        super().__init__()
        effnet = timm.create_model("tf_efficientnet_lite3", pretrained=False)
        stages = effnet.blocks
        self.layer1 = nn.Sequential(effnet.conv_stem, effnet.bn1, nn.Identity(), stages[0], stages[1])
        self.layer2 = nn.Sequential(stages[2])
        self.layer3 = nn.Sequential(stages[3], stages[4])
        self.layer4 = nn.Sequential(stages[5], stages[6])

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encode an image.

        Args:
            x: ``(B, 3, H, W)`` normalised image, sides multiples of 32.

        Returns:
            Features at strides 4, 8, 16 and 32: ``(B, 32, H/4, W/4)``, ``(B, 48, H/8, W/8)``,
            ``(B, 136, H/16, W/16)`` and ``(B, 384, H/32, W/32)``.
        """
        layer_1 = self.layer1(x)
        layer_2 = self.layer2(layer_1)
        layer_3 = self.layer3(layer_2)
        layer_4 = self.layer4(layer_3)
        return layer_1, layer_2, layer_3, layer_4


class MidasSmallDecoder(nn.Module):
    """The official ``scratch`` module: lateral convolutions, fusion blocks and the head.

    Args:
        features: Base channel count (64 for the official model); level ``i`` uses
            ``features * 2**(i-1)`` channels.
    """

    def __init__(self, features: int = _FEATURES) -> None:
        super().__init__()
        widths = [features * 2**i for i in range(4)]  # 64, 128, 256, 512
        self.layer1_rn, self.layer2_rn, self.layer3_rn, self.layer4_rn = (
            nn.Conv2d(c_in, c_out, kernel_size=3, padding=1, bias=False)
            for c_in, c_out in zip(_ENCODER_CHANNELS, widths, strict=True)
        )
        # Each block halves the channels, except the last one which keeps them.
        self.refinenet4 = FusionBlock(widths[3], widths[2])
        self.refinenet3 = FusionBlock(widths[2], widths[1])
        self.refinenet2 = FusionBlock(widths[1], widths[0])
        self.refinenet1 = FusionBlock(widths[0], widths[0])
        self.output_conv = nn.Sequential(
            nn.Conv2d(features, features // 2, kernel_size=3, padding=1),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            nn.Conv2d(features // 2, 32, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 1, kernel_size=1),
            nn.ReLU(),  # the official model is built with non_negative=True
        )

    def forward(
        self, layer_1: torch.Tensor, layer_2: torch.Tensor, layer_3: torch.Tensor, layer_4: torch.Tensor
    ) -> torch.Tensor:
        """Decode the encoder features.

        Args:
            layer_1: ``(B, 32, H/4, W/4)`` features.
            layer_2: ``(B, 48, H/8, W/8)`` features.
            layer_3: ``(B, 136, H/16, W/16)`` features.
            layer_4: ``(B, 384, H/32, W/32)`` features.

        Returns:
            ``(B, 1, H, W)`` non-negative relative inverse depth.
        """
        path = self.refinenet4(self.layer4_rn(layer_4))
        path = self.refinenet3(path, self.layer3_rn(layer_3))
        path = self.refinenet2(path, self.layer2_rn(layer_2))
        path = self.refinenet1(path, self.layer1_rn(layer_1))
        return self.output_conv(path)


class MidasSmall(nn.Module):
    """MiDaS v2.1 small: a drop-in for the official ``MidasNet_small`` state dict.

    Attributes:
        pretrained: The EfficientNet-Lite3 encoder.
        scratch: The decoder.
    """

    def __init__(self) -> None:
        super().__init__()
        self.pretrained = EfficientNetLite3Encoder()
        self.scratch = MidasSmallDecoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Predict relative inverse depth.

        Args:
            x: ``(B, 3, H, W)`` float image, RGB scaled to [0, 1] then normalised with the
                ImageNet mean and std; ``H`` and ``W`` multiples of 32 (256x256 nominal).
                Any memory format.

        Returns:
            ``(B, H, W)`` relative inverse depth (unitless, >= 0, larger is nearer), float32
            (also under a bfloat16/float16 autocast; float64 if the network is float64).

        Raises:
            ValueError: ``x`` is not 4-D with 3 channels, or a side is not a multiple of 32.
        """
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected a (B, 3, H, W) tensor, got shape {tuple(x.shape)}")
        if x.shape[-2] % INPUT_MULTIPLE or x.shape[-1] % INPUT_MULTIPLE:
            raise ValueError(f"input sides must be multiples of {INPUT_MULTIPLE}, got {tuple(x.shape[-2:])}")
        depth = self.scratch(*self.pretrained(x)).squeeze(1)
        return depth.to(torch.promote_types(depth.dtype, torch.float32))


def build_midas_v21_small_256() -> MidasSmall:
    """Build MiDaS v2.1 small with random weights (nothing is downloaded).

    Returns:
        The network in training mode; load ``midas_v21_small_256.pt`` into it with
        ``load_state_dict(..., strict=True)`` and call ``.eval()``.
    """
    return MidasSmall()
