"""Ray Data's executor, held back by a slow consumer, pauses instead of turning without end."""

import time

import numpy as np
import pytest
import ray.data
from ray.data import ExecutionResources
from ray.data._internal.execution.execution_callback import ExecutionCallback

from pipelines.executor_idle import PAUSE_ENV, PauseWhenIdle, idle_pause_s, pause_when_idle
from pipelines.training_data import token_windows
from tests.clips import write_token_shards


class CountTurns(ExecutionCallback):
    """Counts the executor's scheduling turns (`iter_batches` runs it in this process)."""

    turns = 0

    def on_execution_step(self, executor) -> None:
        CountTurns.turns += 1


def turns_while_consuming_slowly(dataset: ray.data.Dataset) -> int:
    """Scheduling turns while a consumer takes a small batch every 50 ms for about 2 s, once the
    pipeline's buffers have filled."""
    dataset.context.custom_execution_callback_classes.append(CountTurns)
    batches = iter(dataset.iter_batches(batch_size=1, prefetch_batches=1))
    next(batches)
    time.sleep(1.0)  # the tasks finish, their outputs wait
    start = CountTurns.turns
    for _ in range(40):
        next(batches)
        time.sleep(0.05)
    return CountTurns.turns - start


def slow_consumers_input() -> ray.data.Dataset:
    """400 blocks of 128 KiB behind a 16 MiB budget: held back long before all is produced."""
    dataset = ray.data.range(4000, override_num_blocks=400).map_batches(
        lambda batch: {"x": np.repeat(batch["id"][:, None], 2**14, axis=1)}
    )
    dataset.context.execution_options.resource_limits = ExecutionResources(
        object_store_memory=16 * 2**20
    )
    return dataset


def test_the_executor_pauses_while_it_is_held_back(ray_cluster, monkeypatch):
    monkeypatch.setenv(PAUSE_ENV, "0")
    spinning = turns_while_consuming_slowly(pause_when_idle(slow_consumers_input()))
    monkeypatch.delenv(PAUSE_ENV)
    pausing = turns_while_consuming_slowly(pause_when_idle(slow_consumers_input()))
    # ~2.3 s of consuming: at most one 20 ms pause a turn, plus the turns that moved a block
    assert pausing < 2.3 / 0.02 + 2 * 40, (pausing, spinning)
    assert pausing < spinning / 5, (pausing, spinning)


def test_training_windows_carry_the_pause(tmp_path):
    data = str(write_token_shards(tmp_path / "tokens", count=4, frames=6))
    windows = token_windows(data, window=4, per_clip=1, seed=0, samples_needed=4)
    assert PauseWhenIdle in windows.context.custom_execution_callback_classes


@pytest.mark.parametrize("value", ["-0.1", "0.5", "soon", "nan"])
def test_a_bad_pause_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(PAUSE_ENV, value)
    with pytest.raises(ValueError, match=f"{PAUSE_ENV} must be seconds"):
        idle_pause_s()
