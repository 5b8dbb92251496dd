"""What this CPU can do, read from the operating system (no torch, no runtime import).

Native bfloat16 on x86 means the ``avx512_bf16`` (AVX512-BF16 dot products) or ``amx_bf16``
(AMX tiles) instruction-set flags; on ARM the ``bf16`` feature. Without them, runtimes emulate
bf16 with float32 instructions, which is slower than plain fp32, so face3d never uses it there.

Example:
    >>> isinstance(cpu_flags(), frozenset)
    True
"""

from __future__ import annotations

import functools
import logging
import platform
from pathlib import Path

logger = logging.getLogger(__name__)

#: CPU flags (as ``/proc/cpuinfo`` names them) that give native bfloat16 arithmetic.
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})

_CPUINFO = Path("/proc/cpuinfo")


@functools.cache
def _cpuinfo_fields() -> dict[str, str]:
    """Return the first processor's ``key: value`` fields of ``/proc/cpuinfo`` (empty elsewhere)."""
    try:
        text = _CPUINFO.read_text(errors="replace")
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # one processor is enough: all cores of a machine report the same flags
            continue
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags() -> frozenset[str]:
    """Return the CPU's instruction-set flags (``flags`` on x86, ``Features`` on ARM); empty if unknown."""
    fields = _cpuinfo_fields()
    return frozenset((fields.get("flags") or fields.get("Features") or "").split())


def cpu_name() -> str:
    """Return the CPU model name (``/proc/cpuinfo``'s ``model name``, else :func:`platform.processor`)."""
    return _cpuinfo_fields().get("model name") or platform.processor() or platform.machine() or "unknown CPU"


def cpu_flags_known() -> bool:
    """Return True where the CPU flags could be read (Linux)."""
    return bool(cpu_flags())


def cpu_has_bf16_flags() -> bool:
    """Return True where the CPU flags show native bfloat16 (see :data:`BF16_FLAGS`)."""
    return bool(cpu_flags() & BF16_FLAGS)
