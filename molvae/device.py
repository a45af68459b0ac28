"""Where and in what precision torch computes: the device a user names (or ``auto``) and the autocast
dtype of a precision setting."""

from __future__ import annotations

from contextlib import nullcontext

import torch

__all__ = ["autocast", "resolve_device", "resolve_precision"]


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when available, else CPU; a named device must exist."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return device


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for a precision setting on a device (None = plain fp32)."""
    if precision == "auto":
        precision = "fp16" if device.type == "cuda" else "fp32"
    if precision not in {"fp32", "fp16", "bf16"}:
        raise ValueError(f"precision must be auto, fp32, fp16 or bf16, got {precision!r}")
    if precision != "fp32" and device.type != "cuda":
        return torch.bfloat16 if precision == "bf16" else None  # CPU autocast only helps with bf16
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def autocast(device: torch.device, dtype: torch.dtype | None):
    """Mixed-precision context for ``dtype``, or a no-op for fp32."""
    return torch.autocast(device.type, dtype=dtype) if dtype else nullcontext()
