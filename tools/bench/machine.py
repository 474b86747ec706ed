"""Where the numbers were measured: CPU, cores, memory, versions, load, pinning."""

from __future__ import annotations

import datetime
import os
import platform
import subprocess
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from tools.bench.procs import CpuPlan

_ROOT = Path(__file__).resolve().parents[2]


def _cpuinfo_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_total() -> str:
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def _package(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def busy_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (all processes, all CPUs).

    Read around a measurement and minus our own processes' CPU time, it tells how much other
    work ran meanwhile: the thing that makes wall-clock figures on a shared machine unreliable.
    """
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return None
    # user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
    ticks = [int(value) for value in fields[1:9]]
    busy = ticks[0] + ticks[1] + ticks[2] + ticks[5] + ticks[6] + ticks[7]
    return busy / os.sysconf("SC_CLK_TCK")


def other_load(window: float = 2.0) -> float | None:
    """CPUs kept busy by other processes over the next ``window`` seconds (this one excluded)."""
    before, own = busy_seconds(), time.process_time()
    time.sleep(window)
    after, own = busy_seconds(), time.process_time() - own
    if before is None or after is None:
        return None
    return max(after - before - own, 0.0) / window


def load_average() -> str:
    """The 1/5/15-minute load averages (other work on the machine skews every wall time)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return "unknown"
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f}"


def machine_info(cpus: CpuPlan) -> dict[str, str]:
    """Everything a reader needs to judge the numbers, as label → value."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "date (UTC)": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "CPU": _cpuinfo_model(),
        "cores": f"{os.cpu_count()} logical, {usable} usable by this process",
        "memory": _memory_total(),
        "OS": platform.platform(),
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "aiohttp": _package("aiohttp"),
        "requests": _package("requests"),
        "vcrpy": _package("vcrpy"),
        "tapedeck commit": _commit(),
        "CPU pinning": cpus.description,
        "load average at start (1/5/15 min)": load_average(),
    }
