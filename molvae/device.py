"""Where and in what precision torch computes: the device a user names (or ``auto``) and the autocast
dtype of a precision setting."""

from __future__ import annotations

from contextlib import nullcontext

import torch

__all__ = ["autocast", "native_bf16", "resolve_device", "resolve_precision"]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; a named device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def native_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices in hardware (AVX-512 BF16 or AMX), as torch reads it."""
    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device (None = plain fp32). ``auto`` is fp16
    on CUDA, bf16 on a CPU with bf16 units (:func:`native_bf16`; the recurrences run about twice as
    fast and learn as well, docs/studies/2026-12-07-faster-training.md) and fp32 on other CPUs, where
    bf16 is emulated and slower."""
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "bf16" if native_bf16() else "fp32"
    if precision not in {"fp32", "fp16", "bf16"}:
        raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
    if precision != "fp32" and device.type != "cuda":
        return torch.bfloat16 if precision == "bf16" else None  # CPU autocast only helps with bf16
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed-precision context for ``dtype``, or a no-op for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
