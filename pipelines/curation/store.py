"""The `scored/` folder of an output root: committed shards, completion markers, and staging for
the wave being scored, local or on an object store.

A wave's files are moved in and then its marker (`scored/_done/<wave>.json`, naming its files and
entries) is written last, by rename: a shard without a marker is a leftover of a killed run and
is deleted by `recover`; an entry named by a marker is finished. `_spec.json` keeps the settings
that fix clip ids, so a scored folder is never extended with clips cut another way.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipelines.curation.decode import DecodeSpec
from pipelines.schemas import SCORED_SCHEMA
from pipelines.storage import filesystem

SCORED = "scored"
DONE = "_done"
STAGING = "_staging"
SPEC = "_spec.json"
# Settings that fix which clips a source gives (and so their ids): a scored folder keeps them.
CLIP_SHAPE = ("fps", "width", "height", "clip_frames", "stride_frames", "cut_threshold", "crf")


class ScoredStore:
    """The `scored/` folder: committed shards, completion markers, staging for a running wave."""

    def __init__(self, out: str, create: bool = True):
        self.fs, root = filesystem(out)
        self.out = out.rstrip("/")
        self.root = f"{root.rstrip('/')}/{SCORED}"
        self.run = uuid.uuid4().hex[:12]
        if create:
            self.fs.create_dir(f"{self.root}/{DONE}", recursive=True)

    def uri(self, path: str) -> str:
        """`path` inside this filesystem as a URI Ray Data can write to."""
        return f"{self.out.split('://', 1)[0]}://{path}" if "://" in self.out else path

    def markers(self) -> list[dict[str, Any]]:
        infos = self.fs.get_file_info(pafs.FileSelector(f"{self.root}/{DONE}"))
        found = []
        for info in sorted(infos, key=lambda i: i.path):
            if info.path.endswith(".json"):
                with self.fs.open_input_stream(info.path) as handle:
                    found.append(json.loads(handle.read()))
        return found

    def committed_files(self) -> list[str]:
        """Paths of the shards that completion markers name (what select may read)."""
        return sorted(f"{self.root}/{name}" for m in self.markers() for name in m["files"])

    def recover(self) -> set[str]:
        """Drop what a killed run left half-done; return the URIs of finished sources."""
        self.fs.delete_dir_contents(f"{self.root}/{STAGING}", missing_dir_ok=True)
        markers = self.markers()
        committed = {name for m in markers for name in m["files"]}
        for info in self.fs.get_file_info(pafs.FileSelector(self.root)):
            if info.base_name.startswith("part-") and info.base_name not in committed:
                self.fs.delete_file(info.path)
        return {uri for m in markers for uri in m["sources"]}

    def commit(self, wave: str, uris: list[str], staging: str) -> list[str]:
        """Move the wave's staged files in, then mark its sources done (the marker is last)."""
        staged = sorted(
            i.path
            for i in self.fs.get_file_info(pafs.FileSelector(staging, recursive=True))
            if i.type == pafs.FileType.File and i.path.endswith(".parquet")
        )
        names = [f"part-{wave}-{n:04d}.parquet" for n in range(len(staged))]
        for path, name in zip(staged, names, strict=True):
            self.fs.move(path, f"{self.root}/{name}")
        marker = json.dumps({"wave": wave, "files": names, "sources": uris}).encode()
        temporary = f"{self.root}/{DONE}/.{wave}.json.tmp"
        with self.fs.open_output_stream(temporary) as handle:
            handle.write(marker)
        self.fs.move(temporary, f"{self.root}/{DONE}/{wave}.json")
        self.fs.delete_dir(staging)
        return names


def read_scored(fs: pafs.FileSystem, path: str, columns: list[str], kind: str) -> pa.Table:
    """The rows of `kind` ("clip" or "source") of one scored shard with `columns` and `row`, the
    row's place in the file (how near-copy edges name a clip). A column that shards scored by an
    older version lack (the shot counts) reads as nulls."""
    with fs.open_input_file(path) as handle:
        present = set(pq.read_schema(handle).names)
    wanted = [c for c in dict.fromkeys([*columns, "kind"]) if c in present]
    table = pq.read_table(path, columns=wanted, filesystem=fs)
    table = table.append_column("row", pa.array(np.arange(len(table), dtype=np.int32)))
    for name in columns:
        if name not in present:
            table = table.append_column(name, pa.nulls(len(table), SCORED_SCHEMA.field(name).type))
    table = table.filter(pc.equal(table.column("kind"), kind))
    return table.select([*columns, "row"])


def write_output(out: str, name: str, data: bytes | dict[str, Any]) -> None:
    """A small file under the output root (JSON for a dict), local or on an object store."""
    fs, root = filesystem(out)
    path = f"{root.rstrip('/')}/{name}"
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    payload = data if isinstance(data, bytes) else json.dumps(data, indent=2, default=str).encode()
    with fs.open_output_stream(path) as handle:
        handle.write(payload)


def read_output(out: str, name: str) -> dict[str, Any] | None:
    """A JSON file under the output root, or None when it is not there."""
    fs, root = filesystem(out)
    path = f"{root.rstrip('/')}/{name}"
    if fs.get_file_info(path).type == pafs.FileType.NotFound:
        return None
    with fs.open_input_stream(path) as handle:
        return json.loads(handle.read())


def check_spec(out: str, spec: DecodeSpec) -> None:
    """Scored data made with other clip settings cannot be extended: say which field differs."""
    stored = read_output(out, f"{SCORED}/{SPEC}")
    if stored is None:
        return
    for key, value in dataclasses.asdict(spec).items():
        if key in CLIP_SHAPE and key not in stored:
            raise ValueError(
                f"config field 'decode.{key}': the scored data in {out} was made by a version "
                f"without this setting (clips cut another way): use another --out"
            )
        if key in CLIP_SHAPE and stored.get(key) != value:
            raise ValueError(
                f"config field 'decode.{key}' is {value!r} but the scored data in {out} was "
                f"made with {stored.get(key)!r}: use another --out or the same setting"
            )


def check_out(out: str) -> None:
    """Fail before any work when `out` cannot be an output folder: it, or a folder above it,
    is a file."""
    fs, path = filesystem(out)
    path = path.rstrip("/")
    while path:
        info = fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            return
        if info.type != pafs.FileType.NotFound:
            what = "is" if path == filesystem(out)[1].rstrip("/") else f"is under {path}, which is"
            raise ValueError(f"config field 'out': {out} {what} a file, not a folder")
        parent = path.rsplit("/", 1)[0]
        if parent == path:
            return
        path = parent
