"""Where profiles and prediction logs live: a local folder or an object store (fsspec URI).

The service writes through :func:`put`, monitoring reads through :func:`listing` and
:func:`fetch`. A location is a path (relative to the project root) or a URI such as
``s3://bucket/profiles``, ``gs://…`` or ``az://…`` (install the matching fsspec driver: ``s3fs``,
``gcsfs``, ``adlfs``; credentials come from the driver's usual environment). Remote files are
staged through local files, so whylogs and pandas only ever read and write local paths, and a
remote object appears whole or not at all. Any failure of the store becomes a
:class:`~{{ cookiecutter.package_name }}.profiling.ProfileError` that names the location.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import fsspec

from .config import resolve
from .profiling import ProfileError

# What fsspec raises for a missing driver, an unknown protocol, a denied or absent path.
STORE_ERRORS = (OSError, ValueError, ImportError)


def is_remote(location: str | Path) -> bool:
    """A URI with a scheme other than ``file://``."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def local(location: str | Path) -> Path:
    """A local location as an absolute path (``file://`` stripped, relative to the project)."""
    return resolve(str(location).removeprefix("file://"))


def put(location: str, name: str, write: Callable[[Path], object]) -> str:
    """Write ``name`` into ``location`` with ``write(local_path)``; returns where it landed."""
    if not is_remote(location):
        target = local(location) / name
        target.parent.mkdir(parents=True, exist_ok=True)
        write(target)
        return str(target)
    with tempfile.TemporaryDirectory() as scratch:
        staged = Path(scratch) / name
        write(staged)
        uri = f"{location.rstrip('/')}/{name}"
        with fsspec.open(uri, "wb") as remote:
            remote.write(staged.read_bytes())
    return uri


def remove(location: str | Path, name: str) -> None:
    """Delete ``name`` from ``location`` if it is there; a store error is raised as it came."""
    if not is_remote(location):
        (local(location) / name).unlink(missing_ok=True)
        return
    filesystem, root_path = fsspec.core.url_to_fs(str(location))
    filesystem.rm(f"{root_path.rstrip('/')}/{name}")


def listing(location: str | Path, suffixes: set[str]) -> dict[str, datetime]:
    """Names in ``location`` ending in one of ``suffixes`` (hidden files skipped), with mtimes."""
    if not is_remote(location) and not local(location).is_dir():
        raise ProfileError(
            f"{local(location)}: profile store not found; "
            "check monitoring.profile_dir (is the service profiling?)"
        )
    try:
        if is_remote(location):
            filesystem, root_path = fsspec.core.url_to_fs(str(location))
            paths = [str(path) for path in filesystem.ls(root_path, detail=False)]
            found = {path.rsplit("/", 1)[-1]: path for path in paths}
            modified = {
                name: _modified(filesystem, path) for name, path in found.items() if _wanted(name, suffixes)
            }
        else:
            modified = {
                path.name: datetime.fromtimestamp(path.stat().st_mtime, tz=UTC)
                for path in local(location).iterdir()
                if _wanted(path.name, suffixes)
            }
    except STORE_ERRORS as error:
        raise ProfileError(f"{location}: cannot list the profile store ({_reason(error)})") from None
    return modified


def fetch(location: str | Path, files: dict[str, datetime], scratch: Path) -> list[Path]:
    """Local paths of ``files``: the files themselves, or copies downloaded into ``scratch``.

    ``files`` maps names to the modification times :func:`listing` gave; copies keep them, so a
    file's window time reads the same either way (and no second request per file asks again).
    """
    if not is_remote(location):
        return [local(location) / name for name in files]
    try:
        filesystem, root_path = fsspec.core.url_to_fs(str(location))
        copies = []
        for name, modified in files.items():
            copy = scratch / name
            filesystem.get_file(f"{root_path.rstrip('/')}/{name}", str(copy))
            os.utime(copy, (modified.timestamp(), modified.timestamp()))
            copies.append(copy)
        return copies
    except STORE_ERRORS as error:
        raise ProfileError(f"{location}: cannot read the profile store ({_reason(error)})") from None


def _wanted(name: str, suffixes: set[str]) -> bool:
    """A data file, not a hidden partial write."""
    return Path(name).suffix in suffixes and not name.startswith(".")


def _modified(filesystem: fsspec.AbstractFileSystem, path: str) -> datetime:
    """Modification time in UTC (drivers that do not know it report now)."""
    try:
        modified: datetime = filesystem.modified(path)
    except (NotImplementedError, *STORE_ERRORS):
        return datetime.now(UTC)
    return modified if modified.tzinfo else modified.replace(tzinfo=UTC)


def _reason(error: BaseException) -> str:
    """The error's own words, or its type when it has none (fsspec's not-found is just the path)."""
    if isinstance(error, FileNotFoundError):
        return "no such folder or object"
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
