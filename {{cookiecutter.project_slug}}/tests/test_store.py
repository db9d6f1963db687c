"""The profile store: the same listing and files from a local folder and from an fsspec URI.

``memory://`` is fsspec's real in-memory filesystem (the driver s3fs, gcsfs and adlfs implement
the same interface for), so these tests exercise the object-store path without a cloud account.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import fsspec
import pytest

from {{ cookiecutter.package_name }} import store
from {{ cookiecutter.package_name }}.profiling import ProfileError


@pytest.fixture
def bucket() -> Iterator[str]:
    """A fresh folder in fsspec's in-memory filesystem, removed afterwards."""
    location = f"memory://bucket-{uuid.uuid4().hex}/profiles"
    yield location
    filesystem, root = fsspec.core.url_to_fs(location)
    if filesystem.exists(root):
        filesystem.rm(root, recursive=True)


@pytest.mark.parametrize("remote", [False, True])
def test_store__put_list_and_fetch_round_trip(remote: bool, bucket: str, tmp_path: Path) -> None:
    location = bucket if remote else str(tmp_path / "profiles")
    for name in ("20260301T110000-a.bin", "20260301T120000-a.bin", "notes.txt"):
        store.put(location, name, lambda path, name=name: Path(path).write_text(name))
    found = store.listing(location, {".bin"})
    assert sorted(found) == ["20260301T110000-a.bin", "20260301T120000-a.bin"]
    assert all(when.tzinfo is UTC for when in found.values())
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    copies = store.fetch(location, {"20260301T120000-a.bin": found["20260301T120000-a.bin"]}, scratch)
    assert [path.read_text() for path in copies] == ["20260301T120000-a.bin"]


def test_store__remote_copies_keep_the_remote_modification_time(bucket: str, tmp_path: Path) -> None:
    store.put(bucket, "worker.bin", lambda path: Path(path).write_bytes(b"x"))
    found = store.listing(bucket, {".bin"})
    (copy,) = store.fetch(bucket, found, tmp_path)
    remote_time = found["worker.bin"]
    assert abs(datetime.fromtimestamp(copy.stat().st_mtime, tz=UTC) - remote_time).total_seconds() < 1


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("nosuchstore://bucket/profiles", "Protocol not known: nosuchstore"),
        ("memory://no-such-bucket/profiles", "no such folder or object"),
    ],
)
def test_store__unreadable_store_is_a_profile_error_naming_it(location: str, reason: str) -> None:
    with pytest.raises(ProfileError, match=f"^{location}: cannot list the profile store .*{reason}"):
        store.listing(location, {".bin"})


def test_store__missing_local_folder_names_the_setting(tmp_path: Path) -> None:
    expected = re.escape("profile store not found; check monitoring.profile_dir")
    with pytest.raises(ProfileError, match=expected):
        store.listing(tmp_path / "absent", {".bin"})
