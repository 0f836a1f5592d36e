"""A pause for Ray Data's streaming executor while it is held back and has nothing to do.

The executor's scheduling loop waits for its tasks (`ray.wait`, up to 0.1 s) and for nothing
else. When a slower consumer holds every operator back, as training holds back the windows it
reads, the loop turns without waiting: no task runs, or the tasks' outputs are ready but may not
be read yet. The process running the executor (for `streaming_split`, Ray Train's
`SplitCoordinator`) then keeps a core busy on bookkeeping, a core taken from the training
workers on a node with few.

`pause_when_idle(dataset)` registers `PauseWhenIdle` in the dataset's own DataContext, whose
copy travels with the dataset to whichever process executes it: after a scheduling step that
moved nothing (no input taken, task started, output produced or block handed on, by any
operator), the loop sleeps for the pause. A consumer asking for the next block waits that long
at most.

The pause is `GENIE_DATA_IDLE_PAUSE_S` seconds (default 0.02; 0 turns it off), read where the
dataset is built.
"""

from __future__ import annotations

import os
import time

import ray.data
from ray.data._internal.execution.execution_callback import ExecutionCallback

PAUSE_ENV = "GENIE_DATA_IDLE_PAUSE_S"
DEFAULT_PAUSE_S = 0.02
MAX_PAUSE_S = 1.0
_CONFIG_KEY = "genie_idle_pause_s"


def idle_pause_s() -> float:
    """The pause `GENIE_DATA_IDLE_PAUSE_S` asks for, in seconds; a clear error if it is not a
    number in [0, MAX_PAUSE_S]."""
    raw = os.environ.get(PAUSE_ENV, "").strip()
    if not raw:
        return DEFAULT_PAUSE_S
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= MAX_PAUSE_S:
        raise ValueError(f"{PAUSE_ENV} must be seconds in [0, {MAX_PAUSE_S}], got {raw!r}")
    return value


class PauseWhenIdle(ExecutionCallback):
    """Sleeps after a scheduling step that moved nothing."""

    def __init__(self) -> None:
        self._last: tuple | None = None

    def on_execution_step(self, executor) -> None:
        progress = tuple(
            (m.num_inputs_received, m.num_tasks_submitted, m.num_task_outputs_generated,
             m.num_outputs_taken, m.num_external_outqueue_blocks)
            for m in (op.metrics for op in executor._topology)
        )  # fmt: skip
        if progress == self._last:
            time.sleep(executor._data_context.get_config(_CONFIG_KEY, DEFAULT_PAUSE_S))
        self._last = progress


def pause_when_idle(dataset: ray.data.Dataset) -> ray.data.Dataset:
    """`dataset`, whose executor pauses `idle_pause_s()` after a step with no task running (as
    before where that is 0)."""
    pause = idle_pause_s()
    if pause > 0:
        dataset.context.set_config(_CONFIG_KEY, pause)
        if PauseWhenIdle not in dataset.context.custom_execution_callback_classes:
            dataset.context.custom_execution_callback_classes.append(PauseWhenIdle)
    return dataset
