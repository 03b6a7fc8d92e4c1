"""Kintsugi spine plugin (work in progress)."""
