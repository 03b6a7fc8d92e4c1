"""Kintsugi: a workbench for people who study broken things.

The package is layered so that everything except :mod:`kintsugi.gui` runs headless:
``core`` (data model) <- ``io`` (files) <- ``samples`` / ``cli``; only ``gui`` imports Qt.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("kintsugi-studio")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"



def run(task_id: str, **kwargs):  # noqa: ANN201 - returns kintsugi.plugins.TaskResult
    """Run a plugin task in this process, e.g. ``kintsugi.run("labels.meshes", labels="seg.nii.gz")``.

    Inputs are layers or paths, parameters plain values; ``output=DIR`` also writes the result files.
    """
    from kintsugi.plugins.execute import run_task

    return run_task(task_id, **kwargs)


__all__ = ["__version__", "run"]
