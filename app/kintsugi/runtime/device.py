"""Which device a task runs on: ``auto`` means cuda, then mps, then cpu."""

from __future__ import annotations

VALID = ("auto", "cpu", "cuda", "mps")


def resolve_device(requested: str = "auto") -> str:
    """The concrete device for ``requested``; an unavailable explicit choice is an error, not a fallback."""
    requested = (requested or "auto").lower()
    if requested.split(":")[0] not in VALID:
        raise ValueError(f"unknown device {requested!r}; choose auto, cpu, cuda or mps")
    if requested == "cpu":
        return "cpu"
    try:
        import torch
    except ImportError:
        if requested == "auto":
            return "cpu"
        raise ValueError(f"device {requested!r} needs torch, which is not installed") from None
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but no CUDA GPU is available")
    if requested == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("device 'mps' was asked for but Apple's MPS is not available")
    return requested
