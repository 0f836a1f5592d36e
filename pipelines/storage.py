"""The one helper for paths: a local path or any pyarrow-filesystem URI (s3://, gs://, file://).

Every path a job takes (sources, `--out`, `data=`, `storage_path=`, `--clips`) goes through
here, so `s3://bucket/key` never meets `pathlib.Path` (which folds `s3://b/k` into `s3:/b/k`).

Relative paths: a relative local path means the folder the user typed it in. A job run by hand
resolves it against its working directory; a job submitted with `genie submit` resolves it
against the submitting folder (passed as `$GENIE_SUBMIT_DIR`); a job submitted with a bare
`ray job submit` runs in Ray's unpacked copy of the working dir, where a relative path would
quietly land inside that copy, so it is refused with a message saying what to pass instead.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
import uuid
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

SUBMIT_DIR_ENV = "GENIE_SUBMIT_DIR"  # the submitting folder, set by `genie submit`
SUBMITTED_JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray in every submitted job's driver
COPY_CHUNK = 8 << 20


class StoragePathError(ValueError):
    """A path argument that cannot be used as given; the message says what to pass."""


def is_uri(path: str) -> bool:
    """True for `scheme://...` (an object store or file:// URI), False for a local path."""
    return "://" in str(path)


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI (s3://, gs://, file://, ...)."""
    if is_uri(uri):
        return pafs.FileSystem.from_uri(str(uri))
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def join(base: str, *parts: str) -> str:
    """`base` with `parts` appended, '/'-separated; an s3://bucket/ prefix is kept."""
    base = str(base)
    if is_uri(base):
        scheme, rest = base.split("://", 1)
        return f"{scheme}://" + posixpath.join(rest, *parts)
    return os.path.join(base, *parts)


def parent(uri: str) -> str:
    """The folder holding `uri` (same scheme)."""
    uri = str(uri).rstrip("/")
    if is_uri(uri):
        scheme, rest = uri.split("://", 1)
        return f"{scheme}://{posixpath.dirname(rest)}"
    return os.path.dirname(os.path.abspath(uri))


def name_of(uri: str) -> str:
    """The last part of `uri`: `s3://b/cur/clips/` -> `clips`."""
    return posixpath.basename(str(uri).rstrip("/"))


def in_submitted_job() -> bool:
    """True inside a job started by `ray job submit` (its driver runs in Ray's copy of the
    working dir, not in the folder the user submitted from)."""
    return SUBMITTED_JOB_ENV in os.environ


def resolve(path: str, what: str = "path") -> str:
    """`path` made absolute where the user meant it (see the module docstring); URIs unchanged.

    Raises StoragePathError for a relative path in a job submitted without its folder."""
    path = str(path)
    if not path or is_uri(path) or os.path.isabs(path):
        return path
    submitted_from = os.environ.get(SUBMIT_DIR_ENV)
    if submitted_from:
        return os.path.normpath(os.path.join(submitted_from, path))
    if in_submitted_job():
        raise StoragePathError(
            f"{what} {path!r} is relative, and this job was submitted with `ray job submit`: it "
            f"would resolve inside Ray's copy of the working dir ({os.getcwd()}), not the folder "
            "you submitted from. Pass an absolute path or an s3:// URI, or submit with "
            "`genie submit`, which resolves relative paths against the submitting folder"
        )
    return os.path.abspath(path)


def exists(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def is_file(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.File


def is_dir(uri: str) -> bool:
    fs, path = filesystem(uri)
    return fs.get_file_info(path).type == pafs.FileType.Directory


def makedirs(uri: str) -> None:
    fs, path = filesystem(uri)
    fs.create_dir(path, recursive=True)


def read_bytes(uri: str) -> bytes:
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        return stream.read()


def write_bytes(uri: str, data: bytes) -> None:
    """Write `data` to `uri`, creating its folder. A local file is written beside and renamed,
    so a reader never sees half of it (an object-store put is atomic by itself)."""
    fs, path = filesystem(uri)
    fs.create_dir(posixpath.dirname(path), recursive=True)
    if isinstance(fs, pafs.LocalFileSystem):
        scratch = f"{path}.{uuid.uuid4().hex[:8]}.tmp"
        with open(scratch, "wb") as handle:
            handle.write(data)
        os.replace(scratch, path)
        return
    with fs.open_output_stream(path) as stream:
        stream.write(data)


def read_json(uri: str) -> Any:
    return json.loads(read_bytes(uri))


def write_json(uri: str, value: Any) -> None:
    write_bytes(uri, json.dumps(value, indent=2, default=str).encode())


def copy_tree(source: str, target: str | Path) -> Path:
    """Copy the folder (or file) `source` to the local folder `target`, streamed in chunks
    (never a whole file in memory). Returns the local path of the copy."""
    fs, root = filesystem(source)
    target = Path(target)
    info = fs.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"{source} does not exist")
    if info.type == pafs.FileType.File:
        files, base = [info], posixpath.dirname(root)
    else:
        files = [
            i
            for i in fs.get_file_info(pafs.FileSelector(root, recursive=True))
            if i.type == pafs.FileType.File
        ]
        base = root
    for file in files:
        local = target / posixpath.relpath(file.path, base)
        local.parent.mkdir(parents=True, exist_ok=True)
        with fs.open_input_stream(file.path) as remote, open(local, "wb") as handle:
            while chunk := remote.read(COPY_CHUNK):
                handle.write(chunk)
    return target if info.type != pafs.FileType.File else target / posixpath.basename(root)


def local_copy(uri: str) -> str:
    """A local path of the file or folder at `uri`: itself when local, else a copy in a fresh
    temporary folder, streamed file by file (a paper-size model never sits in memory). The
    caller owns the copy."""
    if not is_uri(uri):
        return uri
    return str(copy_tree(uri, tempfile.mkdtemp(prefix="genie-copy-")))
