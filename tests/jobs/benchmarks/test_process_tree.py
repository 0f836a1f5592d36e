import subprocess
import sys

from jobs.benchmarks.process_tree import ProcessTree

CHILD = """
import time
held = b"x" * (200 * 2**20)  # written, so its pages are resident
end = time.process_time() + 0.6
while time.process_time() < end:
    pass
"""


def test_a_child_that_ends_inside_the_block_still_counts_its_cpu_and_memory():
    with ProcessTree(interval=0.05, memory=True) as usage:
        subprocess.run([sys.executable, "-c", CHILD], check=True)
    assert usage.cpu_seconds >= 0.5  # read only at the start and the end: ~0
    assert usage.peak_pss_mb >= 200
    assert any("python" in name for name in usage.peak_by_process_mb)


def test_cpu_only_by_default():
    with ProcessTree(interval=0.05) as usage:
        subprocess.run([sys.executable, "-c", "pass"], check=True)
    assert usage.peak_pss_mb == 0 and usage.peak_by_process_mb == {}
