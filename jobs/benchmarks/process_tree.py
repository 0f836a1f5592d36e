"""What a process and every process under it (a local Ray: GCS, raylet, workers) cost while a
block runs, sampled from outside: CPU seconds, and optionally peak memory."""

from __future__ import annotations

import threading
from typing import Any


class ProcessTree:
    """Sample process `pid` (default: this one) and its descendants every `interval` seconds.

    After the block: `cpu_seconds`, the CPU time the tree spent during it (each process's last
    reading kept, so a worker that exits mid-run, as Ray ends idle workers past its soft limit,
    still counts up to its last sample); with `memory=True` also `peak_pss_mb`, the highest sum of
    proportional set sizes (a page shared by n processes counts 1/n in each, so shared libraries
    are not counted once per process), `peak_by_process_mb` at that moment, and `peak_rss_sum_mb`
    (shared pages counted once per process). Memory is off by default: reading it is costly enough
    to disturb a CPU measurement.
    """

    def __init__(self, pid: int | None = None, interval: float = 0.2, memory: bool = False):
        self.pid, self.interval, self.memory = pid, interval, memory
        self.cpu_seconds = self.peak_pss_mb = self.peak_rss_sum_mb = 0.0
        self.peak_by_process_mb: dict[str, float] = {}
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _sample(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        pss: dict[str, float] = {}
        rss = 0.0
        for process in processes:
            try:
                times = process.cpu_times()
                self._last[process.pid] = times.user + times.system
                if self.memory:
                    memory = process.memory_full_info()
                    pss[f"{process.pid} {process.name()}"] = memory.pss / 2**20
                    rss += memory.rss / 2**20
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        self.peak_rss_sum_mb = max(self.peak_rss_sum_mb, rss)
        if sum(pss.values()) > self.peak_pss_mb:
            self.peak_pss_mb, self.peak_by_process_mb = sum(pss.values()), pss

    def _poll(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> ProcessTree:
        self._sample()
        self._first = dict(self._last)  # a process started later counts from zero
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.cpu_seconds = sum(cpu - self._first.get(pid, 0.0) for pid, cpu in self._last.items())
