"""Kintsugi: a workbench for people who study broken things.

The package is layered so that everything except :mod:`kintsugi.gui` runs headless:
``core`` (data model) <- ``io`` (files) <- ``samples`` / ``cli``; only ``gui`` imports Qt.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kintsugi-studio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
