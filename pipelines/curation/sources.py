"""Where raw videos come from: a directory, a glob, or a manifest (Parquet/CSV with a `uri` column),
local or on an object store, all through pyarrow filesystems.

Listing is a generator: a directory is walked one folder at a time and a manifest is read in
batches, so a listing of millions of files never sits whole in memory. Order is deterministic
(sorted within each folder, manifest order otherwise) so a rerun sees the same sources.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.fs as pafs

VIDEO_SUFFIXES = (
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".ts", ".mpg", ".mpeg", ".wmv",
    ".3gp", ".ogv",
)  # fmt: skip
MANIFEST_SUFFIXES = (".parquet", ".csv")
WILDCARDS = "*?["
HASH_CHUNK = 8 << 20


def filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI (s3://, gs://, file://, ...)."""
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), os.path.abspath(uri)


def _join(uri: str, path: str) -> str:
    """The URI of `path` on the same filesystem as `uri` (keeps s3://bucket/ prefixes)."""
    if "://" in uri:
        scheme = uri.split("://", 1)[0]
        return f"{scheme}://{path}"
    return path


def source_kind(spec: str) -> str:
    """'glob', 'manifest' or 'directory' (a single video file counts as a directory of one)."""
    if any(c in spec for c in WILDCARDS):
        return "glob"
    if spec.lower().endswith(MANIFEST_SUFFIXES):
        return "manifest"
    return "directory"


def check_source(spec: str) -> None:
    """Fail before any work when the source cannot be listed (named in the message)."""
    kind = source_kind(spec)
    base = _glob_base(spec) if kind == "glob" else spec
    fs, path = filesystem(base)
    info = fs.get_file_info(path)
    if info.type == pafs.FileType.NotFound:
        raise FileNotFoundError(f"source {spec!r}: {path} does not exist")
    if kind == "manifest":
        names = pads.dataset(path, filesystem=fs, format=_manifest_format(path)).schema.names
        if "uri" not in names:
            raise ValueError(f"source manifest {spec!r} needs a 'uri' column, has {names}")


def iter_sources(spec: str, suffixes: tuple[str, ...] = VIDEO_SUFFIXES) -> Iterator[str]:
    """Every source URI of `spec`, streamed. Directory and glob listings keep video suffixes only
    (a README next to the videos is not a source); a manifest lists exactly what it names."""
    kind = source_kind(spec)
    if kind == "manifest":
        yield from _manifest_uris(spec)
        return
    base = _glob_base(spec) if kind == "glob" else spec
    fs, root = filesystem(base)
    if fs.get_file_info(root).type == pafs.FileType.File:
        yield _join(base, root)
        return
    pattern = _pattern_path(spec) if kind == "glob" else None
    for path in _walk(fs, root):
        if pattern is not None and not fnmatch.fnmatchcase(path, pattern):
            continue
        if pattern is None and not path.lower().endswith(suffixes):
            continue
        yield _join(base, path)


def _glob_base(spec: str) -> str:
    """The folder above the first wildcard: `data/**/*.mp4` -> `data`."""
    first = min(spec.find(c) for c in WILDCARDS if c in spec)
    return spec[:first].rsplit("/", 1)[0] or "/"


def _pattern_path(spec: str) -> str:
    """A glob in the form of the filesystem's paths (no scheme; absolute when local)."""
    return spec.split("://", 1)[1] if "://" in spec else os.path.abspath(spec)


def _walk(fs: pafs.FileSystem, folder: str) -> Iterator[str]:
    """Files under `folder`, depth first, sorted; hidden (`.`) and private (`_`) names skipped."""
    entries = fs.get_file_info(pafs.FileSelector(folder, recursive=False))
    for info in sorted(entries, key=lambda i: i.path):
        if info.base_name.startswith((".", "_")):
            continue
        if info.type == pafs.FileType.Directory:
            yield from _walk(fs, info.path)
        elif info.type == pafs.FileType.File:
            yield info.path


def _manifest_format(path: str) -> str:
    return "csv" if path.lower().endswith(".csv") else "parquet"


def _manifest_uris(spec: str) -> Iterator[str]:
    fs, path = filesystem(spec)
    folder = path.rsplit("/", 1)[0]
    dataset = pads.dataset(path, filesystem=fs, format=_manifest_format(path))
    for batch in dataset.to_batches(columns=["uri"], batch_size=4096):
        for uri in batch.column(0).to_pylist():
            if not uri:
                continue
            if "://" in uri or uri.startswith("/"):
                yield uri
            else:  # relative to the manifest
                yield _join(spec, f"{folder}/{uri}")


@contextmanager
def local_copy(uri: str) -> Iterator[tuple[str, str]]:
    """(content id, local path) of a source. The content id is a hash of the bytes, so the same
    video under two names or buckets gets the same id, and clip ids stay stable across reruns.

    Remote files are copied to a temporary file while hashing (decoding needs random access)."""
    fs, path = filesystem(uri)
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(fs, pafs.LocalFileSystem):
        with open(path, "rb") as handle:
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
        yield digest.hexdigest(), path
        return
    folder = tempfile.mkdtemp(prefix="genie-source-")
    try:
        local = str(Path(folder) / "source")
        with fs.open_input_stream(path) as remote, open(local, "wb") as handle:
            while chunk := remote.read(HASH_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
        yield digest.hexdigest(), local
    finally:
        shutil.rmtree(folder, ignore_errors=True)
