"""Run a command and measure its wall time and memory, child processes included (Linux /proc; no psutil).

Why a sampler: `getrusage(RUSAGE_CHILDREN).ru_maxrss` is the largest single descendant's peak, not the sum of
processes alive at the same time (a sweep's workers); the sampler sums the resident sets of the whole process
tree every `interval` seconds, so its peak is a lower bound of the true simultaneous peak (a spike shorter than
the interval can be missed). Both figures are reported.
"""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time
from pathlib import Path

PAGE = os.sysconf("SC_PAGE_SIZE")


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def tree_rss(pid: int) -> int:
    """Bytes resident in `pid` and all its descendants now."""
    tree, total, todo = _children(), 0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * PAGE
        except (OSError, IndexError, ValueError):
            pass
        todo.extend(tree.get(current, []))
    return total


def run_measured(command: list[str], *, env: dict | None = None, cwd: str | None = None, interval: float = 0.2,
                 timeout: float | None = None) -> dict:
    """Run `command`; return wall seconds, return code, sampled peak of the process tree's summed RSS, the
    largest single process's peak RSS (getrusage), and the tail of its output."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    stop = threading.Event()

    def sample():
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, tree_rss(process.pid))
            stop.wait(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        output, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        output, _ = process.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    single = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"wall_s": wall, "returncode": process.returncode, "tree_peak_bytes": peak,
            "largest_process_peak_bytes": single * 1024 if single > before else None, "output": output}
