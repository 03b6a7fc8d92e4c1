"""Kintsugi crack plugin (work in progress)."""
