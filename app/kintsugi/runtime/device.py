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


def _likely_accelerator() -> str:
    """What ``auto`` will probably resolve to, judged without importing torch (which is slow and
    heavy in a GUI process): an NVIDIA driver means cuda, Apple silicon means mps, else cpu."""
    import os
    import platform
    import sys
    from pathlib import Path

    if sys.platform == "darwin" and platform.machine() == "arm64":
        return "mps"
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "cpu"
    if Path("/proc/driver/nvidia/version").exists():
        return "cuda"
    if sys.platform == "win32":
        import ctypes.util

        if ctypes.util.find_library("nvcuda"):
            return "cuda"
    return "cpu"


def queue_key(requested: str) -> str:
    """The device queue a job waits in: ``auto`` shares the queue of the device it will most likely
    use, so that 'one job per device at a time' also holds between ``auto`` and explicit jobs."""
    requested = (requested or "auto").strip().lower()
    if requested == "auto":
        return _likely_accelerator()
    return "cuda" if requested == "cuda:0" else requested
