"""Saving and opening workspaces, as a folder or a zip, atomically.

A save writes everything into a hidden sibling (``.NAME.tmp-PID-XXXX``) and only then moves it into
place: a zip with one ``os.replace``; a folder by renaming the old one aside, the new one in, and
deleting the old one. A crash or a failing writer at any point leaves the previous workspace intact
(between the two renames it is the ``.NAME.old-*`` sibling, which :func:`open_workspace` falls back to).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import re
import secrets
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kintsugi.core import Layer, Scene
from kintsugi.io.errors import KintsugiIOError
from kintsugi.system import pid_alive
from kintsugi.workspace.format import (
    DATA_DIR,
    FORMAT_NAME,
    FORMAT_VERSION,
    MANIFEST,
    EncodedLayer,
    WorkspaceError,
    check_manifest,
    check_rel,
    decode_layers,
    dumps,
    encode_layer,
    from_json,
    to_json,
)

log = logging.getLogger("kintsugi.workspace")

_STORED_SUFFIXES = (".gz", ".png", ".zip")  # already compressed: deflating again only costs time


def is_zip_path(path: str | Path) -> bool:
    """``*.zip`` (including ``*.kintsugi.zip``) saves as a zip; anything else as a folder."""
    return Path(path).name.lower().endswith(".zip")


# ---------------------------------------------------------------------------------------------- save


@dataclass
class Snapshot:
    """Everything a save writes, encoded: manifest entries plus the pending data files."""

    layers: list[EncodedLayer]
    extra: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def snapshot(layers: Scene | Iterable[Layer], extra: dict[str, Any] | None = None, *, copy: bool = False,
             notes: list[str] | None = None) -> Snapshot:
    """Encode ``layers`` (in order) and ``extra``; ``copy=True`` copies arrays so the layers may change."""
    notes = [] if notes is None else notes
    encoded = []
    for layer in list(layers):
        enc = encode_layer(layer, len(encoded), notes, copy=copy)
        if enc is not None:
            encoded.append(enc)
    extra_json = to_json(extra or {}, "extra", notes)
    if not isinstance(extra_json, dict):
        extra_json = {}
    return Snapshot(encoded, extra_json, notes)


def save_workspace(scene: Scene | Iterable[Layer], path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Save the layers of ``scene`` (and ``extra``, e.g. view state) as a workspace; return its path.

    A path ending in ``.zip`` writes a zip, anything else a folder. Raises :class:`WorkspaceError`
    when the save fails; the workspace that was there before is then untouched.
    """
    return write_snapshot(snapshot(scene, extra), path)


def write_snapshot(snap: Snapshot, path: str | Path) -> Path:
    target = Path(path).expanduser().absolute()
    zipped = is_zip_path(target)
    _check_target(target, zipped)
    for note in snap.notes:
        log.warning("%s: %s", target, note)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise WorkspaceError(target, f"cannot create the folder: {e.strerror or e}") from None
    token = f"{os.getpid()}-{secrets.token_hex(4)}"
    stage = target.parent / f".{target.name}.tmp-{token}"
    tmp_zip = target.parent / f".{target.name}.tmp-{token}.zip"
    try:
        stage.mkdir()
        _write_files(stage, snap, target)
        if zipped:
            _zip_folder(stage, tmp_zip)
            _fsync(tmp_zip)
            os.replace(tmp_zip, target)
        else:
            _replace_dir(stage, target, token)
        _fsync(target.parent)
    except WorkspaceError:
        raise
    except Exception as e:
        raise WorkspaceError(target, f"cannot save: {_describe(e)}") from e
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
        tmp_zip.unlink(missing_ok=True)
    _remove_stale_siblings(target)
    return target


def _describe(e: BaseException) -> str:
    if isinstance(e, KintsugiIOError):
        return e.detail
    if isinstance(e, OSError) and e.strerror:
        return e.strerror + (f" ({e.filename})" if e.filename else "")
    return f"{type(e).__name__}: {e}" if str(e) else type(e).__name__


def _check_target(target: Path, zipped: bool) -> None:
    """Never replace something that is not a workspace: a save must not eat a folder of user data."""
    if not target.exists():
        return
    if zipped:
        if target.is_dir():
            raise WorkspaceError(target, "is a folder; not replacing it with a zip")
        if target.stat().st_size and not _zip_has_manifest(target):
            raise WorkspaceError(target, "exists and is not a Kintsugi workspace; not overwriting it")
    elif not target.is_dir():
        raise WorkspaceError(target, "exists and is a file, not a workspace folder; not overwriting it")
    elif not (target / MANIFEST).is_file() and any(target.iterdir()):
        raise WorkspaceError(target, f"exists, is not empty and holds no {MANIFEST}; not overwriting it")


def _zip_has_manifest(path: Path) -> bool:
    try:
        with zipfile.ZipFile(path) as zf:
            return MANIFEST in zf.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def _write_files(stage: Path, snap: Snapshot, target: Path) -> None:
    (stage / DATA_DIR).mkdir()
    for enc in snap.layers:
        for f in enc.files:
            dest = stage / f.rel
            try:
                dest.parent.mkdir(parents=True, exist_ok=True)
                if f.link_from is not None:
                    _link_or_copy(f.link_from, dest)
                else:
                    f.write(dest)
                _fsync(dest)
            except Exception as e:
                raise WorkspaceError(target, f"cannot save: {_describe(e)}", file=f.rel) from e
    manifest = {
        "format": FORMAT_NAME,
        "version": FORMAT_VERSION,
        "kintsugi_version": _kintsugi_version(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(),
        "layers": [enc.entry for enc in snap.layers],
        "extra": snap.extra,
        "notes": list(snap.notes),
    }
    (stage / MANIFEST).write_bytes(dumps(manifest))
    _fsync(stage / MANIFEST)


def _kintsugi_version() -> str:
    import kintsugi

    return str(kintsugi.__version__)


def _link_or_copy(src: Path, dest: Path) -> None:
    try:
        os.link(src, dest)
    except FileNotFoundError:
        raise
    except OSError:  # another file system, or one without hard links
        shutil.copyfile(src, dest)


def _fsync(path: Path) -> None:
    """Flush a file (or a folder's entries) to disk, so a power cut after the rename loses nothing."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return  # folders cannot be opened on Windows; nothing to do there
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _zip_folder(folder: Path, dest: Path) -> None:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    files.sort(key=lambda p: p.name != MANIFEST)  # the manifest first: cheap to find and read
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for p in files:
            rel = p.relative_to(folder).as_posix()
            method = zipfile.ZIP_STORED if rel.lower().endswith(_STORED_SUFFIXES) else zipfile.ZIP_DEFLATED
            zf.write(p, rel, compress_type=method)


def _replace_dir(stage: Path, target: Path, token: str) -> None:
    if not target.exists():
        os.rename(stage, target)
        return
    old = target.parent / f".{target.name}.old-{token}"
    os.rename(target, old)
    try:
        os.rename(stage, target)
    except BaseException:
        os.rename(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


_SIBLING = re.compile(r"^\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>\d+)-[0-9a-f]+(?:\.zip)?$")


def _remove_stale_siblings(target: Path) -> None:
    """Remove half-written saves (and stale backups) that dead processes left beside ``target``."""
    try:
        siblings = list(target.parent.iterdir())
    except OSError:
        return
    for p in siblings:
        m = _SIBLING.match(p.name)
        if not m or m["name"] != target.name:
            continue
        pid = int(m["pid"])
        if pid == os.getpid() or pid_alive(pid):
            continue
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)


def _backup_of(ws: Path) -> Path | None:
    """A previous workspace renamed aside by a save that was killed between its two renames."""
    try:
        siblings = list(ws.parent.iterdir())
    except OSError:
        return None
    found = []
    for p in siblings:
        m = _SIBLING.match(p.name)
        if m and m["name"] == ws.name and ".old-" in p.name and (p / MANIFEST).is_file():
            found.append(p)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


# ---------------------------------------------------------------------------------------------- open


def _parse_manifest(raw: bytes, ws: Path) -> dict[str, Any]:
    if not raw.strip():
        raise WorkspaceError(ws, "empty", file=MANIFEST)
    try:
        doc = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise WorkspaceError(ws, "not UTF-8 text", file=MANIFEST) from None
    except json.JSONDecodeError as e:
        raise WorkspaceError(ws, f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
                             file=MANIFEST) from None
    return check_manifest(doc, ws)


def _resolve(path: str | Path) -> tuple[Path, Path]:
    """(what the user named, what to read): a manifest path means its folder; a missing folder may
    have a backup left by an interrupted save."""
    ws = Path(path).expanduser()
    if ws.name == MANIFEST and ws.is_file():
        ws = ws.parent
    if ws.exists():
        return ws, ws
    backup = _backup_of(ws)
    if backup is None:
        raise WorkspaceError(ws, "no such workspace (a folder or .zip holding workspace.json)")
    log.warning("%s: missing; opening %s, left by an interrupted save", ws, backup.name)
    return ws, backup


def _open_zip(ws: Path, src: Path) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(src)
    except zipfile.BadZipFile:
        raise WorkspaceError(ws, "the zip file is truncated or corrupt") from None
    except OSError as e:
        raise WorkspaceError(ws, f"cannot read: {e.strerror or e}") from None


def _zip_read(zf: zipfile.ZipFile, name: str, ws: Path) -> bytes:
    try:
        return zf.read(name)
    except KeyError:
        raise WorkspaceError(ws, "missing: this zip holds no workspace.json, so it is not a Kintsugi workspace",
                             file=name) from None
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as e:
        raise WorkspaceError(ws, f"corrupt in the zip: {e}", file=name) from None


def read_manifest(path: str | Path) -> dict[str, Any]:
    """The validated ``workspace.json`` of a workspace folder or zip, without reading any data file."""
    ws, src = _resolve(path)
    if src.is_dir():
        return _parse_manifest(_read_dir_manifest(ws, src), ws)
    with _open_zip(ws, src) as zf:
        return _parse_manifest(_zip_read(zf, MANIFEST, ws), ws)


def _read_dir_manifest(ws: Path, folder: Path) -> bytes:
    p = folder / MANIFEST
    if not p.is_file():
        raise WorkspaceError(ws, "missing: this folder is not a Kintsugi workspace", file=MANIFEST)
    try:
        return p.read_bytes()
    except OSError as e:
        raise WorkspaceError(ws, f"cannot read: {e.strerror or e}", file=MANIFEST) from None


def open_workspace(path: str | Path) -> tuple[list[Layer], dict[str, Any]]:
    """Open a workspace folder or zip: its layers in order and its ``extra`` dict (view state).

    Raises :class:`WorkspaceError` (one line naming the workspace and the file inside it) when
    ``workspace.json`` is missing or invalid, its version is unknown, or a data file is missing or
    corrupt.
    """
    ws, src = _resolve(path)
    if src.is_dir():
        doc = _parse_manifest(_read_dir_manifest(ws, src), ws)
        layers = decode_layers(doc, src, ws)
    else:
        if not is_zip_path(src) and not zipfile.is_zipfile(src):
            raise WorkspaceError(ws, "not a Kintsugi workspace (a folder or .zip holding workspace.json)")
        with _open_zip(ws, src) as zf:
            doc = _parse_manifest(_zip_read(zf, MANIFEST, ws), ws)
            with tempfile.TemporaryDirectory(prefix="kintsugi-workspace-") as tmp:
                root = Path(tmp)
                for info in zf.infolist():
                    if info.is_dir() or info.filename == MANIFEST:
                        continue
                    try:
                        check_rel(info.filename, ws)
                    except WorkspaceError:
                        continue  # never extract outside; a layer naming it fails as missing
                    dest = root / info.filename
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        with zf.open(info) as src_fh, open(dest, "wb") as out:
                            shutil.copyfileobj(src_fh, out, 1 << 20)
                    except (zipfile.BadZipFile, zlib.error, EOFError) as e:
                        raise WorkspaceError(ws, f"corrupt in the zip: {e}", file=info.filename) from None
                layers = decode_layers(doc, root, ws)
    extra = from_json(doc.get("extra") or {})
    return layers, extra


def looks_like_workspace(path: str | Path) -> bool:
    """Cheap test for open dialogs and drag and drop: a folder or zip with a workspace.json."""
    p = Path(path)
    if p.is_dir():
        return (p / MANIFEST).is_file()
    return p.is_file() and zipfile.is_zipfile(p) and _zip_has_manifest(p)


__all__ = [
    "Snapshot",
    "WorkspaceError",
    "is_zip_path",
    "looks_like_workspace",
    "open_workspace",
    "read_manifest",
    "save_workspace",
    "snapshot",
    "write_snapshot",
]
