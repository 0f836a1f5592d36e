"""A pause for Ray Data's streaming executor while it is held back and has nothing to do.

The executor's scheduling loop waits for its tasks (`ray.wait`, up to 0.1 s) and for nothing
else. When a slower consumer holds every operator back, as training holds back the windows it
reads, the loop turns without waiting: no task runs, or the tasks' outputs are ready but may not
be read yet. The process running the executor (for `streaming_split`, Ray Train's
`SplitCoordinator`) then keeps a core busy on bookkeeping, a core taken from the training
workers on a node with few.

`pause_when_idle(dataset)` registers `PauseWhenIdle` in the dataset's own DataContext, whose
copy travels with the dataset to whichever process executes it. After a scheduling turn that
neither waited (it came back within `SPIN_S` of the turn before) nor moved anything (no input
taken, task started or finished, output produced or block handed on, by any operator), the
loop sleeps for the pause. A turn that moved something, or waited on its tasks, is never
followed by a pause; a block can meet a few pauses on its way to the consumer.

The pause is `GENIE_DATA_IDLE_PAUSE_S` seconds (default 0.02, at most 0.1, Ray's own wait;
0 turns it off), read where the dataset is built. The callback reads private parts of Ray Data
(pinned in pyproject.toml); should they change, it logs once and stops pausing instead of
failing the dataset.
"""

from __future__ import annotations

import logging
import os
import time

import ray.data
from ray.data._internal.execution.execution_callback import ExecutionCallback

PAUSE_ENV = "GENIE_DATA_IDLE_PAUSE_S"
DEFAULT_PAUSE_S = 0.02
MAX_PAUSE_S = 0.1
# A turn back sooner than this after the one before did not sit out Ray's 0.1 s wait; one that
# waited and moved nothing has already slept.
SPIN_S = 0.05
_CONFIG_KEY = "genie_idle_pause_s"

log = logging.getLogger(__name__)


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
    """Sleeps after a scheduling turn that neither waited nor moved anything."""

    def __init__(self) -> None:
        self._last_progress: tuple | None = None
        self._turn_started = time.monotonic()  # when this callback last returned
        self._broken = False

    def on_execution_step(self, executor) -> None:
        if self._broken:
            return
        try:
            progress = tuple(
                (m.num_inputs_received, m.num_tasks_submitted, m.num_tasks_finished,
                 m.num_task_outputs_generated, m.num_outputs_taken,
                 m.num_external_outqueue_blocks)
                for m in (op.metrics for op in executor._topology)
            )  # fmt: skip
            pause = executor._data_context.get_config(_CONFIG_KEY, DEFAULT_PAUSE_S)
        except Exception as error:  # a Ray Data that no longer has these parts
            self._broken = True
            log.warning("the idle pause is off for this dataset: %r", error)
            return
        turn_s = time.monotonic() - self._turn_started  # the turn alone, not the last pause
        if turn_s < SPIN_S and progress == self._last_progress:
            time.sleep(pause)
        self._last_progress, self._turn_started = progress, time.monotonic()


def pause_when_idle(dataset: ray.data.Dataset) -> ray.data.Dataset:
    """`dataset`, whose executor pauses `idle_pause_s()` after a turn that neither waited nor
    moved anything (as before where that is 0)."""
    pause = idle_pause_s()
    if pause > 0:
        dataset.context.set_config(_CONFIG_KEY, pause)
        if PauseWhenIdle not in dataset.context.custom_execution_callback_classes:
            dataset.context.custom_execution_callback_classes.append(PauseWhenIdle)
    return dataset
