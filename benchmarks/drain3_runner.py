"""Drain3 baseline for benchmarks/templates.py; runs ONLY inside benchmarks/.venv-drain3.

drain3 pins ``cachetools<5``, which breaks prefect, so it never enters the project venv:
``benchmarks/templates.py`` creates a separate venv and runs this script there. It imports
nothing from opsflow.

Configuration: the masking list, mask prefix and suffix of drain3's example config
(``examples/drain3.ini`` in https://github.com/logpai/Drain3); everything else (sim_th 0.4,
depth 4, no extra delimiters, no cluster limit) is TemplateMinerConfig's default.

Usage (with the drain3 venv's python):
  drain3_runner.py clusters FILE...   one JSON list of cluster ids per file (one message per line)
  drain3_runner.py throughput FILE    JSON: lines, seconds, lines_per_s, peak_rss_mb
"""

from __future__ import annotations

import json
import logging
import resource
import sys
import time

from drain3 import TemplateMiner
from drain3.masking import MaskingInstruction
from drain3.template_miner_config import TemplateMinerConfig

# drain3's examples/drain3.ini [MASKING] section, verbatim
EXAMPLE_MASKING = [
    (r"((?<=[^A-Za-z0-9])|^)(([0-9a-f]{2,}:){3,}([0-9a-f]{2,}))((?=[^A-Za-z0-9])|$)", "ID"),
    (r"((?<=[^A-Za-z0-9])|^)(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})((?=[^A-Za-z0-9])|$)", "IP"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9a-f]{6,} ?){3,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)([0-9A-F]{4} ?){4,}((?=[^A-Za-z0-9])|$)", "SEQ"),
    (r"((?<=[^A-Za-z0-9])|^)(0x[a-f0-9A-F]+)((?=[^A-Za-z0-9])|$)", "HEX"),
    (r"((?<=[^A-Za-z0-9])|^)([\-\+]?\d+)((?=[^A-Za-z0-9])|$)", "NUM"),
    (r"(?<=executed cmd )(\".+?\")", "CMD"),
]


def new_miner() -> TemplateMiner:
    config = TemplateMinerConfig()
    config.masking_instructions = [MaskingInstruction(p, m) for p, m in EXAMPLE_MASKING]
    config.mask_prefix = "<:"
    config.mask_suffix = ":>"
    config.profiling_enabled = False
    return TemplateMiner(config=config)


def peak_rss_mb() -> float:
    """Peak RSS of this process image (VmHWM; ru_maxrss carries the parent's over exec)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def read_lines(path: str) -> list[str]:
    with open(path, encoding="utf-8") as f:
        return [line.rstrip("\n") for line in f]


def clusters(paths: list[str]) -> None:
    out = []
    for path in paths:
        miner = new_miner()
        out.append([miner.add_log_message(line)["cluster_id"] for line in read_lines(path)])
    json.dump(out, sys.stdout)


def throughput(path: str) -> None:
    miner = new_miner()
    n = 0
    start = time.perf_counter()
    with open(path, encoding="utf-8") as f:
        for line in f:
            miner.add_log_message(line.rstrip("\n"))
            n += 1
    seconds = time.perf_counter() - start
    json.dump(
        {
            "lines": n,
            "seconds": seconds,
            "lines_per_s": n / seconds,
            "peak_rss_mb": peak_rss_mb(),
            "templates": len(miner.drain.clusters),
        },
        sys.stdout,
    )


if __name__ == "__main__":
    logging.disable(logging.CRITICAL)  # drain3 logs every new cluster at INFO
    mode, *args = sys.argv[1:]
    if mode == "clusters":
        clusters(args)
    elif mode == "throughput":
        throughput(args[0])
    else:
        sys.exit(f"unknown mode {mode!r}")
