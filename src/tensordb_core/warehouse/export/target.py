"""Where an export goes: refuse a path that holds something (unless asked), write beside it, then rename.

Why stage: a reader must never find half an export under the name it asked
for, and a refused or failed export must leave the path as it was.  The
writer fills a hidden sibling (``.NAME.partial-XXXX``, same directory, so the
final ``os.replace`` is one atomic rename on the same filesystem); only a
complete export is renamed into place.  With ``overwrite=True`` the old
content is moved aside first and deleted only after the new one is in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tensordb_core.errors import OutputExists, OutputNotWritable


def check_target(path: str | os.PathLike[str], *, overwrite: bool, directory: bool) -> Path:
    """The resolved output path, after checking it may be written; nothing is created here.

    Raises :class:`OutputExists` for anything already there (unless
    ``overwrite``) except an empty directory where the format writes a
    directory, and :class:`OutputNotWritable` when the parent directory is
    missing or not writable.
    """
    target = Path(os.fspath(path)).expanduser().absolute()
    if target.exists() or target.is_symlink():
        empty_dir = directory and target.is_dir() and not target.is_symlink() and not any(target.iterdir())
        if not empty_dir and not overwrite:
            raise OutputExists(f"{target} already exists: choose a new path, or pass overwrite=True "
                               "(--overwrite) to replace it")
    parent = target.parent
    if not parent.is_dir():
        raise OutputNotWritable(f"cannot write {target}: the directory {parent} does not exist (create it first)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputNotWritable(f"cannot write {target}: the directory {parent} is not writable")
    return target


@contextmanager
def staged(target: Path, *, directory: bool) -> Iterator[Path]:
    """Yield a fresh sibling path to write (a directory when ``directory``); rename it onto ``target`` on success.

    On an exception the staged path is removed and ``target`` is untouched.
    """
    try:
        holder = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    except OSError as exc:
        raise OutputNotWritable(f"cannot write beside {target}: {exc.strerror or exc}") from exc
    stage = holder / target.name
    try:
        if directory:
            stage.mkdir()
        yield stage
        _replace(stage, target)
    finally:
        shutil.rmtree(holder, ignore_errors=True)


def _replace(stage: Path, target: Path) -> None:
    aside = None
    if target.exists() or target.is_symlink():
        aside = stage.parent / f"replaced-{target.name}"
        os.replace(target, aside)  # moved into the holder, which the caller deletes
    try:
        os.replace(stage, target)
    except OSError:
        if aside is not None:
            os.replace(aside, target)
        raise
