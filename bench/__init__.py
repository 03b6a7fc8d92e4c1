"""Speed and accuracy benchmarks; ``python -m bench`` (or ``kintsugi bench``) updates results.md."""
