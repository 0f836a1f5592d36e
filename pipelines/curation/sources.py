"""Where raw videos come from: a directory, a glob, or a manifest (Parquet/CSV with a `uri` column),
local or on an object store, all through pyarrow filesystems.

A listing names every entry it meets, as an `Entry`: a source to decode, or one left out with the
reason (`SKIP_REASONS`), so a run can account for everything in the folder: a README, an `.mp3`,
a hidden `.DS_Store` or `_SUCCESS`, a FIFO, a symlink loop or a name that is not UTF-8 are each
one skipped entry, never silently dropped and never fatal. A folder that is not walked (hidden,
symlinked, unreadable) is one entry. Symlinks are never followed out of the source folder nor
into folders (so no loop can exist); a symlink to a file inside it is listed like the file.

Listing is a generator: a directory is walked one folder at a time without recursion and a
manifest is read in batches, so a listing of millions of files never sits whole in memory. Order
is deterministic (sorted within each folder, manifest order otherwise) so a rerun sees the same
sources.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import os
import shutil
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow.dataset as pads
import pyarrow.fs as pafs

from pipelines.storage import filesystem

VIDEO_SUFFIXES = (
    ".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v", ".flv", ".ts", ".mpg", ".mpeg", ".wmv",
    ".3gp", ".ogv",
)  # fmt: skip
MANIFEST_SUFFIXES = (".parquet", ".csv")
WILDCARDS = "*?["
HASH_CHUNK = 8 << 20

SKIP_REASONS = {
    "not_a_video": "the name has no video suffix (audio, text, images, ...)",
    "hidden": "the name starts with '.' or '_' (hidden files, job markers)",
    "not_a_regular_file": "a FIFO, socket or device",
    "dangling_symlink": "a symlink to nothing",
    "symlink_loop": "a symlink that resolves to itself",
    "symlink_to_folder": "a symlinked folder (not followed)",
    "symlink_outside_source": "a symlink to a file outside the source folder (not followed)",
    "undecodable_name": "a name that is not UTF-8",
    "unreadable_folder": "a folder that cannot be listed",
    "listed_twice": "a manifest row naming a file an earlier row named",
    "empty_uri": "a manifest row without a uri",
}


class NotARegularFile(ValueError):
    """A path that names a FIFO, socket or device: reading it could block or never end."""


@dataclass(frozen=True)
class Entry:
    """One entry of a listing: a source to decode, or one left out with its reason."""

    uri: str  # a printable UTF-8 name (an undecodable byte shows as \\xNN)
    skipped: str = ""  # one of SKIP_REASONS, or "" for a source to decode
    note: str = ""


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


def iter_entries(spec: str) -> Iterator[Entry]:
    """Every entry of `spec`, streamed. Directory and glob listings decode video suffixes only
    and name everything else they meet as skipped; a manifest lists exactly what it names."""
    kind = source_kind(spec)
    if kind == "manifest":
        yield from _manifest_entries(spec)
        return
    base = _glob_base(spec) if kind == "glob" else spec
    fs, root = filesystem(base)
    if kind == "directory" and fs.get_file_info(root).type != pafs.FileType.Directory:
        yield Entry(_join(base, root))  # one file, named by the user: decoded whatever its name
        return
    pattern = _pattern_path(spec) if kind == "glob" else None
    walk = _walk_local(root) if isinstance(fs, pafs.LocalFileSystem) else _walk_remote(fs, root)
    for path, skipped, note, is_folder in walk:
        if pattern is not None and (is_folder or not fnmatch.fnmatchcase(path, pattern)):
            continue  # a glob lists what matches it
        if not skipped and not path.lower().endswith(VIDEO_SUFFIXES):
            skipped, note = "not_a_video", f"suffix {Path(path).suffix or '(none)'!r}"
        yield Entry(_join(base, path), skipped, note)


def _glob_base(spec: str) -> str:
    """The folder above the first wildcard: `data/**/*.mp4` -> `data`."""
    first = min(spec.find(c) for c in WILDCARDS if c in spec)
    return spec[:first].rsplit("/", 1)[0] or "/"


def _pattern_path(spec: str) -> str:
    """A glob in the form of the filesystem's paths (no scheme; absolute when local)."""
    return spec.split("://", 1)[1] if "://" in spec else os.path.abspath(spec)


Walked = tuple[str, str, str, bool]  # (path, skip reason or "", note, is a folder)


def _printable(path: str) -> str | None:
    """`path` as UTF-8 text, or None when a name in it is not UTF-8 (os gives such bytes back
    as surrogates)."""
    try:
        path.encode("utf-8")
        return path
    except UnicodeEncodeError:
        return None


def _walk_local(root: str) -> Iterator[Walked]:
    """Every entry under `root`, depth first, sorted by name, with lstat semantics."""
    real_root = os.path.realpath(root)
    folders: list[Iterator[os.DirEntry]] = []
    skipped = _open_folder(root, folders)
    if skipped:
        yield skipped
    while folders:
        entry = next(folders[-1], None)
        if entry is None:
            folders.pop()
            continue
        path = entry.path
        printable = _printable(path)
        if printable is None:
            shown = os.fsencode(path).decode("utf-8", "backslashreplace")
            is_folder = entry.is_dir(follow_symlinks=False)
            yield shown, "undecodable_name", "the name is not UTF-8", is_folder
            continue
        if entry.name.startswith((".", "_")):
            yield path, "hidden", "", entry.is_dir(follow_symlinks=False)
            continue
        if entry.is_symlink():
            yield _symlink(path, real_root)
            continue
        if entry.is_dir(follow_symlinks=False):
            skipped = _open_folder(path, folders)
            if skipped:
                yield skipped
            continue
        if entry.is_file(follow_symlinks=False):
            yield path, "", "", False
            continue
        yield path, "not_a_regular_file", _file_type(entry.stat(follow_symlinks=False)), False


def _open_folder(path: str, folders: list[Iterator[os.DirEntry]]) -> Walked | None:
    """Push the sorted entries of `path`; the skipped entry if it cannot be listed."""
    try:
        with os.scandir(path) as scan:
            entries = sorted(scan, key=lambda e: e.name)
    except OSError as error:
        return path, "unreadable_folder", f"{type(error).__name__}: {error.strerror}", True
    folders.append(iter(entries))
    return None


def _symlink(path: str, real_root: str) -> Walked:
    """A symlink is listed as the file it names when that is a regular file inside the source
    folder; anything else is skipped with the reason."""
    try:
        target = os.path.realpath(path, strict=True)
        info = os.stat(target)
    except OSError as error:
        if error.errno == errno.ELOOP:
            return path, "symlink_loop", "", False
        return path, "dangling_symlink", f"-> {os.readlink(path)}", False
    if stat.S_ISDIR(info.st_mode):
        return path, "symlink_to_folder", f"-> {target}", True
    if not target.startswith(real_root + os.sep):
        return path, "symlink_outside_source", f"-> {target}", False
    if not stat.S_ISREG(info.st_mode):
        return path, "not_a_regular_file", _file_type(info), False
    return path, "", "", False


def _file_type(info: os.stat_result) -> str:
    mode = info.st_mode
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _walk_remote(fs: pafs.FileSystem, root: str) -> Iterator[Walked]:
    """Every object under `root` on an object store, depth first, sorted (keys are UTF-8 and
    there are no links or special files)."""
    folders = [iter(sorted(fs.get_file_info(pafs.FileSelector(root)), key=lambda i: i.path))]
    while folders:
        info = next(folders[-1], None)
        if info is None:
            folders.pop()
            continue
        is_folder = info.type == pafs.FileType.Directory
        if info.base_name.startswith((".", "_")):
            yield info.path, "hidden", "", is_folder
        elif is_folder:
            entries = fs.get_file_info(pafs.FileSelector(info.path))
            folders.append(iter(sorted(entries, key=lambda i: i.path)))
        elif info.type == pafs.FileType.File:
            yield info.path, "", "", False
        else:
            yield info.path, "not_a_regular_file", str(info.type), False


def _manifest_format(path: str) -> str:
    return "csv" if path.lower().endswith(".csv") else "parquet"


def _manifest_rows(spec: str, columns: list[str]) -> Iterator[list]:
    """The manifest's `columns`, row by row, in order (read in batches)."""
    fs, path = filesystem(spec)
    dataset = pads.dataset(path, filesystem=fs, format=_manifest_format(path))
    for batch in dataset.to_batches(columns=columns, batch_size=4096):
        yield from zip(*(batch.column(name).to_pylist() for name in columns), strict=True)


def _resolve(spec: str, uri: str) -> str:
    """A manifest's path as a URI: absolute paths and URIs as they are, others relative to
    the manifest's folder."""
    if "://" in uri or uri.startswith("/"):
        return uri
    return _join(spec, f"{filesystem(spec)[1].rsplit('/', 1)[0]}/{uri}")


def _manifest_entries(spec: str) -> Iterator[Entry]:
    for row, (uri,) in enumerate(_manifest_rows(spec, ["uri"]), start=1):
        if not uri:
            yield Entry(f"{spec}#row={row}", "empty_uri", f"row {row} of the manifest")
        else:
            yield Entry(_resolve(spec, uri))


def manifest_column(spec: str, column: str) -> dict[str, str]:
    """{source uri: that row's `column`} for the rows of a manifest that set both, paths
    resolved as curation resolves `uri` (so the keys are the clips' `source_uri`); {} when the
    manifest has no such column."""
    fs, path = filesystem(spec)
    names = pads.dataset(path, filesystem=fs, format=_manifest_format(path)).schema.names
    if column not in names:
        return {}
    return {
        _resolve(spec, uri): _resolve(spec, value)
        for uri, value in _manifest_rows(spec, ["uri", column])
        if uri and value
    }


@contextmanager
def local_copy(uri: str, deadline: float | None = None) -> Iterator[tuple[str, str]]:
    """(content id, local path) of a source. The content id is a hash of the bytes, so the same
    video under two names or buckets gets the same id, and clip ids stay stable across reruns.

    Remote files are copied to a temporary file while hashing (decoding needs random access).
    Only regular files are read (a FIFO named by a manifest would block forever), and reading
    stops with TimeoutError once `deadline` (time.monotonic) has passed."""
    fs, path = filesystem(uri)
    digest = hashlib.blake2b(digest_size=16)
    if isinstance(fs, pafs.LocalFileSystem):
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with open(descriptor, "rb") as handle:
            if not stat.S_ISREG(os.fstat(descriptor).st_mode):
                raise NotARegularFile(f"{uri} is {_file_type(os.fstat(descriptor))}")
            os.set_blocking(descriptor, True)
            while chunk := handle.read(HASH_CHUNK):
                digest.update(chunk)
                _check_deadline(deadline, uri)
        yield digest.hexdigest(), path
        return
    folder = tempfile.mkdtemp(prefix="genie-source-")
    try:
        local = str(Path(folder) / "source")
        with fs.open_input_stream(path) as remote, open(local, "wb") as handle:
            while chunk := remote.read(HASH_CHUNK):
                digest.update(chunk)
                handle.write(chunk)
                _check_deadline(deadline, uri)
        yield digest.hexdigest(), local
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _check_deadline(deadline: float | None, uri: str) -> None:
    if deadline is not None and time.monotonic() > deadline:
        raise TimeoutError(f"the time budget ran out while reading {uri}")
