"""Kintsugi dental plugin (work in progress)."""
