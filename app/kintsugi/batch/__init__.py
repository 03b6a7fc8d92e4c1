"""Batch at scale: run one task over many inputs on a Dask cluster (local by default), resumably.

``kintsugi.batch.run_batch("volume.threshold", "scans/*.nii.gz", "out/", level=300)`` is the Python
twin of ``kintsugi batch volume.threshold --inputs 'scans/*.nii.gz' --level 300 --output out/``.
No Qt here: the GUI's Batch dialog calls the same function from a background thread.
"""

from kintsugi.batch.plan import BatchError, expand_inputs
from kintsugi.batch.run import BatchCancelled, BatchProgress, BatchReport, run_batch

__all__ = ["BatchCancelled", "BatchError", "BatchProgress", "BatchReport", "expand_inputs", "run_batch"]
