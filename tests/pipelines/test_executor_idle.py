"""Ray Data's executor, held back by a slow consumer, pauses instead of keeping a core busy."""

import time

import numpy as np
import pytest
import ray.data
from ray.data import ExecutionResources

from pipelines.executor_idle import PAUSE_ENV, PauseWhenIdle, idle_pause_s, pause_when_idle


def executor_cpu_seconds_while_consuming_slowly(dataset: ray.data.Dataset) -> float:
    """CPU seconds this process (where `iter_batches` runs the executor) spends while a consumer
    takes a small batch every 50 ms for about 2 s, after the pipeline's buffers have filled."""
    batches = iter(dataset.iter_batches(batch_size=1, prefetch_batches=1))
    next(batches)
    time.sleep(1.0)  # the tasks finish, their outputs wait: nothing is running any more
    start = time.process_time()
    for _ in range(40):
        next(batches)
        time.sleep(0.05)
    return time.process_time() - start


def slow_consumers_input() -> ray.data.Dataset:
    """400 blocks of 1 MB behind a 16 MB budget: held back long before it is all produced."""
    dataset = ray.data.range(4000, override_num_blocks=400).map_batches(
        lambda batch: {"x": np.repeat(batch["id"][:, None], 2**14, axis=1)}
    )
    dataset.context.execution_options.resource_limits = ExecutionResources(
        object_store_memory=16 * 2**20
    )
    return dataset


def test_the_executor_sleeps_while_no_task_runs(ray_cluster, monkeypatch):
    monkeypatch.setenv(PAUSE_ENV, "0")
    spinning = executor_cpu_seconds_while_consuming_slowly(pause_when_idle(slow_consumers_input()))
    monkeypatch.delenv(PAUSE_ENV)
    paused = pause_when_idle(slow_consumers_input())
    assert PauseWhenIdle in paused.context.custom_execution_callback_classes
    pausing = executor_cpu_seconds_while_consuming_slowly(paused)
    # without the pause the scheduling loop turns for the whole ~2 s
    assert spinning > 1.0, spinning
    assert pausing < spinning / 3, (pausing, spinning)


@pytest.mark.parametrize("value", ["-0.1", "2", "soon", "nan"])
def test_a_bad_pause_is_refused_naming_the_variable(monkeypatch, value):
    monkeypatch.setenv(PAUSE_ENV, value)
    with pytest.raises(ValueError, match=f"{PAUSE_ENV} must be seconds"):
        idle_pause_s()
