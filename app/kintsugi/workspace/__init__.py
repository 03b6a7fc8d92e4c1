"""Workspaces: save and open everything a user is working on; autosave and crash recovery.

A workspace is a folder, or a ``.zip`` of one, holding ``workspace.json`` (format, version, the layer
list with names, display state, geometry, poses, label names and colours, provenance, and the GUI's
view state as ``extra``) and one standard data file per layer (NIfTI, PNG/TIFF, numpy ``.npz``, JSON).
Nothing is pickled. Headless: no Qt here; the GUI calls these.

    save_workspace(scene, "study.kintsugi.zip", extra={"layout": "2x2"})
    layers, extra = open_workspace("study.kintsugi.zip")

To save without blocking the GUI: ``snap = snapshot(scene, extra, copy=True)`` on the GUI thread (copies
arrays), then ``write_snapshot(snap, path)`` on a worker thread.
"""

from kintsugi.workspace.autosave import (
    Autosaver,
    RecoveryInfo,
    discard_recoverable,
    find_recoverable,
    list_recoverable,
    state_dir,
)
from kintsugi.workspace.format import FORMAT_NAME, FORMAT_VERSION, MANIFEST, WorkspaceError
from kintsugi.workspace.store import (
    is_zip_path,
    looks_like_workspace,
    open_workspace,
    read_manifest,
    save_workspace,
    snapshot,
    write_snapshot,
)

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MANIFEST",
    "Autosaver",
    "RecoveryInfo",
    "WorkspaceError",
    "discard_recoverable",
    "find_recoverable",
    "is_zip_path",
    "list_recoverable",
    "looks_like_workspace",
    "open_workspace",
    "read_manifest",
    "save_workspace",
    "snapshot",
    "state_dir",
    "write_snapshot",
]
