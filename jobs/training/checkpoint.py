"""Training checkpoints, written and read shard by shard with `torch.distributed.checkpoint`.

A checkpoint folder holds
- the model and optimizer state as DCP files: each rank writes only its own shards
  (`__<rank>_0.distcp`) and rank 0 the index (`.metadata`); under DDP every rank holds the
  whole (replicated) state and DCP writes each tensor once;
- `train_state.json` (rank 0): step, data position, scheduler, MLflow run id, the resolved run
  config and the model config it was trained with;
- `rng_rank<r>.pt` (each rank): that rank's RNG state, so a resumed rank draws the masks and
  dropout it would have drawn.

Each rank writes into its own scratch folder and Ray Train copies all of them into one
checkpoint folder in storage (local or an object store). A resumed rank reads straight from
storage through pyarrow, only the byte ranges of the shards it owns: no rank downloads or holds
the whole checkpoint, and a run resumes on another number of workers (DCP re-shards).
"""

from __future__ import annotations

import io
import json
import os
import posixpath
from collections.abc import Generator
from contextlib import contextmanager
from typing import Any

import pyarrow.fs as pafs
import torch
import torch.distributed.checkpoint as dcp
from torch import nn
from torch.distributed.checkpoint.filesystem import FileSystemBase, FileSystemReader
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_state_dict,
    set_state_dict,
)

TRAIN_STATE = "train_state.json"
RNG_FILE = "rng_rank{rank}.pt"


class ArrowFileSystem(FileSystemBase):
    """DCP's file operations on a pyarrow filesystem (local, S3, GCS, ...)."""

    def __init__(self, fs: pafs.FileSystem):
        self.fs = fs

    @contextmanager
    def create_stream(self, path, mode: str) -> Generator[io.IOBase, None, None]:
        if "r" in mode:  # random access: a reader seeks to each of its shards' byte ranges
            with self.fs.open_input_file(str(path)) as stream:
                yield stream
        else:
            with self.fs.open_output_stream(str(path)) as stream:
                yield stream

    def concat_path(self, path, suffix: str) -> str:
        return posixpath.join(str(path), suffix)

    def rename(self, path, new_path) -> None:
        self.fs.move(str(path), str(new_path))

    def init_path(self, path) -> str:
        return str(path)

    def mkdir(self, path) -> None:
        self.fs.create_dir(str(path), recursive=True)

    @classmethod
    def validate_checkpoint_id(cls, checkpoint_id) -> bool:
        return True

    def exists(self, path) -> bool:
        return self.fs.get_file_info(str(path)).type != pafs.FileType.NotFound

    def rm_file(self, path) -> None:
        self.fs.delete_file(str(path))


class ArrowReader(FileSystemReader):
    """A DCP reader on a pyarrow filesystem that counts the bytes this process read."""

    def __init__(self, fs: pafs.FileSystem, path: str):
        super().__init__(path)
        self.fs = ArrowFileSystem(fs)
        self.bytes_read = 0

    def read_data(self, plan, planner):
        self.bytes_read += sum(self.storage_data[item.storage_index].length for item in plan.items)
        return super().read_data(plan, planner)


def model_and_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """This rank's view of the model and optimizer state (DTensor shards under FSDP2)."""
    model_state, optimizer_state = get_state_dict(model, optimizer)
    return {"model": model_state, "optimizer": optimizer_state}


def local_bytes(state: Any) -> int:
    """Bytes of tensor data this rank holds in `state` (its own shards of DTensors)."""
    from torch.distributed.tensor import DTensor

    if isinstance(state, dict):
        return sum(local_bytes(v) for v in state.values())
    if isinstance(state, list | tuple):
        return sum(local_bytes(v) for v in state)
    if isinstance(state, DTensor):
        state = state.to_local()
    if isinstance(state, torch.Tensor):
        return state.numel() * state.element_size()
    return 0


def save(
    folder: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int,
    train_state: dict[str, Any],
) -> int:
    """Write this rank's part of a checkpoint into the local `folder` (every rank calls it:
    it is a collective). Returns the bytes of tensor data this rank held to write it."""
    state = model_and_optimizer(model, optimizer)
    dcp.save(state, checkpoint_id=folder)
    torch.save({"cpu": torch.get_rng_state(), "cuda": cuda_rng()},
               os.path.join(folder, RNG_FILE.format(rank=rank)))  # fmt: skip
    if rank == 0:
        with open(os.path.join(folder, TRAIN_STATE), "w") as handle:
            json.dump(train_state, handle, indent=2, default=str)
    return local_bytes(state)


def cuda_rng() -> list[torch.Tensor]:
    return torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []


def train_state(fs: pafs.FileSystem, folder: str) -> dict[str, Any]:
    """Step, data position, scheduler, run id and configs of the checkpoint at `folder`."""
    return json.loads(read(fs, posixpath.join(folder, TRAIN_STATE)))


def resume_state(fs: pafs.FileSystem, folder: str, stage: str, preset: str) -> dict[str, Any]:
    """The train state of the checkpoint at `folder` that a run of `stage` at `preset` resumes
    from, once its model config is checked: a checkpoint trained with another model config is
    refused (`models.checkpoint.CheckpointMismatch`, naming the field) before any shard is read."""
    from models.checkpoint import check_config

    state = train_state(fs, folder)
    check_config(state.get("model_config"), stage, preset, f"the checkpoint at {folder}")
    return state


def load(
    fs: pafs.FileSystem,
    folder: str,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    rank: int,
) -> int:
    """Restore this rank's shards, and its own RNG, from the checkpoint at `folder` on `fs`
    (every rank calls it). Returns the bytes this rank read of the shards.

    A rank that has no RNG file of its own (the run grew) keeps the seed it started with."""
    state = model_and_optimizer(model, optimizer)
    reader = ArrowReader(fs, folder)
    dcp.load(state, storage_reader=reader)
    set_state_dict(model, optimizer, model_state_dict=state["model"],
                   optim_state_dict=state["optimizer"])  # fmt: skip
    rng_path = posixpath.join(folder, RNG_FILE.format(rank=rank))
    if fs.get_file_info(rng_path).type == pafs.FileType.File:
        rng = torch.load(io.BytesIO(read(fs, rng_path)), weights_only=True)
        torch.set_rng_state(rng["cpu"])
        if rng["cuda"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    return reader.bytes_read


def read(fs: pafs.FileSystem, path: str) -> bytes:
    with fs.open_input_stream(path) as stream:
        return stream.read()


def export_model(model: nn.Module, fs: pafs.FileSystem, folder: str, info: dict) -> None:
    """Write the weights for serving into `folder` on `fs` (an object store or local), each
    rank its own shards straight to storage, plus `model.json` (`info`) from rank 0. Nothing is
    gathered: `models.checkpoint.load_trained` reads the folder into a model built on the meta
    device. Every rank calls it (a collective)."""
    from models.checkpoint import MODEL_INFO

    state = {"model": get_model_state_dict(model, options=StateDictOptions())}
    fs.create_dir(folder, recursive=True)
    writer = dcp.FileSystemWriter(folder, sync_files=False)
    writer.fs = ArrowFileSystem(fs)
    dcp.save(state, storage_writer=writer)
    first = not torch.distributed.is_initialized() or torch.distributed.get_rank() == 0
    if first:
        with fs.open_output_stream(posixpath.join(folder, MODEL_INFO)) as stream:
            stream.write(json.dumps(info, indent=2).encode())
