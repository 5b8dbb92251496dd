"""Exact-in-fp32 CPU speed-ups for the depth networks, verified on load.

:func:`accelerate_for_cpu` folds every BatchNorm that directly follows a convolution into
the convolution's weights (same maths, fewer passes over memory) and switches to the
channels-last memory format that oneDNN's convolutions prefer. The result is checked
against the untouched network on an example input; if it deviates by more than a small
fraction of the output's spread (or the graph cannot be traced), the plain network is used
and a warning is logged, so acceleration can never change what users get.
"""

from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover - torch is imported where used, so importing this module is cheap
    import torch
    from torch import nn

logger = logging.getLogger(__name__)

#: Accept the accelerated network when ``max|fast - plain| <= RTOL * std(plain)``.
RTOL = 1e-3


def _fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """Return a copy of ``conv`` whose weights include the (eval-mode) BatchNorm after it."""
    import torch
    from torch import nn

    fused = copy.deepcopy(conv)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    fused.weight = nn.Parameter((conv.weight * scale.reshape(-1, 1, 1, 1)).detach())
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    fused.bias = nn.Parameter(((bias - bn.running_mean) * scale + bn.bias).detach())
    return fused


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold BatchNorm2d layers that directly consume a Conv2d output (traced with torch.fx).

    Args:
        model: An eval-mode network.

    Returns:
        A ``torch.fx.GraphModule`` computing the same function with fewer layers.

    Raises:
        Exception: Whatever torch.fx raises when the model cannot be traced symbolically.
    """
    import torch.fx as fx
    from torch import nn

    traced = fx.symbolic_trace(model)
    modules = dict(traced.named_modules())
    folded = 0
    for node in list(traced.graph.nodes):
        if node.op != "call_module" or not isinstance(modules.get(node.target), nn.BatchNorm2d):
            continue
        prev = node.args[0]
        if not isinstance(prev, fx.Node) or prev.op != "call_module":
            continue
        conv = modules.get(prev.target)
        if not isinstance(conv, nn.Conv2d) or len(prev.users) != 1:
            continue
        bn = modules[node.target]
        if not bn.track_running_stats or bn.running_mean is None:
            continue
        parent_name, _, attr = prev.target.rpartition(".")
        parent = traced.get_submodule(parent_name) if parent_name else traced
        setattr(parent, attr, _fuse_conv_bn(conv, bn))
        node.replace_all_uses_with(prev)
        traced.graph.erase_node(node)
        folded += 1
    traced.graph.lint()
    traced.recompile()
    traced.delete_all_unused_submodules()
    logger.debug("folded %d BatchNorm layers", folded)
    return traced


def accelerate_for_cpu(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """Return a faster, numerically equivalent fp32 CPU version of ``model``.

    Args:
        model: Eval-mode network on the CPU with its weights loaded.
        example: ``(1, 3, h, w) float32`` input used to check equivalence.

    Returns:
        The accelerated network, or ``model`` itself (channels-last) if acceleration failed or
        deviated.
    """
    import torch

    with torch.inference_mode():
        return _accelerate(model.eval(), example)


def _accelerate(model: nn.Module, example: torch.Tensor) -> nn.Module:
    import torch
    from torch import nn

    if not any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        # Nothing to fold (the transformer DPTs): only the memory format changes, which needs no check
        # and saves two full forward passes when a large network is loaded.
        return model.to(memory_format=torch.channels_last)
    reference = model(example)
    try:
        fast = fold_batchnorm(model)
    except Exception as exc:  # noqa: BLE001 - tracing can fail in many ways; fall back safely
        logger.info("BatchNorm folding skipped for %s: %s", type(model).__name__, exc)
        fast = model
    fast = fast.to(memory_format=torch.channels_last)
    got = fast(example.contiguous(memory_format=torch.channels_last))
    spread = float(reference.float().std()) or 1.0
    deviation = float((got - reference).abs().max()) / spread
    if deviation > RTOL:
        logger.warning(
            "Accelerated %s deviates by %.2e x std; using the plain network", type(model).__name__, deviation
        )
        return model.to(memory_format=torch.channels_last)
    logger.debug("accelerated %s, max deviation %.2e x std", type(model).__name__, deviation)
    return fast
