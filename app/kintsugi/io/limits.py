"""How much a single file may ask us to allocate before we refuse to read it.

A header can claim any size; checking the claim before allocating turns a corrupt or hostile file
into a clear message instead of an out-of-memory kill that takes the user's session with it.
"""

from __future__ import annotations

import os


def available_memory_bytes() -> int:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or unsupported platform
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return 8 * 1024**3


def max_load_bytes() -> int:
    """Largest array a reader may allocate: ``KINTSUGI_MAX_LOAD_BYTES`` or 75 % of free memory."""
    env = os.environ.get("KINTSUGI_MAX_LOAD_BYTES")
    if env:
        return int(float(env))
    return int(available_memory_bytes() * 0.75)


def check_size(path: object, n_bytes: int, what: str = "the image") -> None:
    from kintsugi.io.errors import TooLargeError

    limit = max_load_bytes()
    if n_bytes > limit:
        raise TooLargeError(
            path,  # type: ignore[arg-type]
            f"{what} would need {_human(n_bytes)} in memory, more than the {_human(limit)} available "
            "(set KINTSUGI_MAX_LOAD_BYTES to raise the limit)",
        )


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1024 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} PB"
