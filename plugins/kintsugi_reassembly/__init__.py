"""Kintsugi reassembly plugin (work in progress)."""
