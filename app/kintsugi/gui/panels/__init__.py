"""Dock panels: layers (and, later, tasks, jobs, log)."""
