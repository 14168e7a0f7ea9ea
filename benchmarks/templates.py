"""Template mining: opsflow's miner against Drain3, on accuracy and on speed.

Accuracy: group accuracy (GA, ``tasks.incidents.templates.group_accuracy``) on the eight Loghub-2k
systems in ``--data`` (``<System>/<System>_2k.log_structured_corrected.csv``: ``Content``
in, ``EventId`` as truth), every system with one default configuration for each tool.
opsflow's GA is given for the ids as ``add`` returned them (``online``) and after
``resolve`` (what ``opsflow templates`` writes).

Speed: masking + mining of ``--lines`` lines (default 1,000,000): Loghub lines drawn at
random (fixed seed) with every number changed (new digits; a quarter of free-standing
counts one digit longer or shorter). The file is written first (not timed); each tool
then reads it line by line in its own fresh process, so its peak RSS is its own.
opsflow runs twice: as configured (lines looked up by shape, see ``tasks.incidents.templates``) and
with ``cache_by_shape=False`` (every line masked; cache by masked text).

Drain3 0.9.11 runs from its own venv (``benchmarks/.venv-drain3``, created on first use:
drain3 pins ``cachetools<5``, which breaks prefect) through ``benchmarks/drain3_runner.py``,
with the masking list of drain3's example ``drain3.ini`` and default sim_th/depth.

Usage:  .venv/bin/python benchmarks/templates.py [--lines 1000000] [--data DIR]
        .venv/bin/python benchmarks/templates.py --variant opsflow --input FILE
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYSTEMS = ("Apache", "BGL", "HDFS", "Hadoop", "Linux", "OpenStack", "Spark", "Zookeeper")
DEFAULT_DATA = Path("/work/shared/data/loghub-2k")
DRAIN3_VENV = REPO / "benchmarks" / ".venv-drain3"
DRAIN3_RUNNER = REPO / "benchmarks" / "drain3_runner.py"
DRAIN3_REQUIREMENT = "drain3==0.9.11"
SEED = 20240601


# --- Drain3's venv --------------------------------------------------------------------------


def drain3_python() -> Path:
    """The drain3 venv's python, creating the venv and installing drain3 on first use."""
    python = DRAIN3_VENV / "bin" / "python"
    probe = [str(python), "-c", "import drain3"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"creating {DRAIN3_VENV} with {DRAIN3_REQUIREMENT} (first run only)...", flush=True)
    venv.create(DRAIN3_VENV, with_pip=True, clear=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", DRAIN3_REQUIREMENT], check=True)
    return python


# --- data -----------------------------------------------------------------------------------


def load_system(data: Path, system: str) -> tuple[list[str], list[str]]:
    """(contents, event ids) of one Loghub-2k system, in line order."""
    path = data / system / f"{system}_2k.log_structured_corrected.csv"
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    return [" ".join(r["Content"].splitlines()) for r in rows], [r["EventId"] for r in rows]


_NUMBER = re.compile(r"\d+")


_MONTH_BEFORE = re.compile(r"(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\s+$")


def vary(line: str, rng: random.Random) -> str:
    """The line with new digits; a quarter of free-standing counts change length by one."""

    def new_number(m: re.Match[str]) -> str:
        n = len(m.group())
        before = line[m.start() - 1] if m.start() else " "
        after = line[m.end()] if m.end() < len(line) else " "
        if (
            n >= 2
            and before in " (=["
            and after in " ,)]"
            and not _MONTH_BEFORE.search(line, 0, m.start())
            and rng.random() < 0.25
        ):
            n += rng.choice((-1, 1))
        return "".join(rng.choice("0123456789") for _ in range(n))

    return _NUMBER.sub(new_number, line)


def write_lines(data: Path, count: int, path: Path) -> None:
    rng = random.Random(SEED)
    pool = [line for system in SYSTEMS for line in load_system(data, system)[0]]
    with path.open("w", encoding="utf-8") as f:
        for _ in range(count):
            f.write(vary(pool[rng.randrange(len(pool))], rng) + "\n")


# --- the variants (each in its own process) --------------------------------------------------


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


def run_opsflow(path: Path, cache_by_shape: bool = True) -> dict:
    from tasks.incidents.templates import TemplateMiner

    miner = TemplateMiner(cache_by_shape=cache_by_shape)
    add = miner.add
    n = 0
    start = time.perf_counter()
    with path.open(encoding="utf-8") as f:
        for line in f:
            add(line.rstrip("\n"))
            n += 1
    seconds = time.perf_counter() - start
    return {
        "lines": n,
        "seconds": seconds,
        "lines_per_s": n / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "templates": len(miner.templates()),
    }


def measure(command: list[str]) -> dict:
    proc = subprocess.run(command, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(command[:3])} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


# --- accuracy -------------------------------------------------------------------------------


def accuracy(data: Path, python: Path, workdir: Path) -> list[tuple[str, float, float, float]]:
    """(system, opsflow GA, opsflow online GA, Drain3 GA) per system."""
    from tasks.incidents.templates import TemplateMiner, group_accuracy

    systems = [(s, *load_system(data, s)) for s in SYSTEMS]
    files = []
    for system, contents, _ in systems:
        path = workdir / f"{system}.txt"
        path.write_text("\n".join(contents) + "\n", encoding="utf-8")
        files.append(str(path))
    drain3 = measure([str(python), str(DRAIN3_RUNNER), "clusters", *files])
    rows = []
    for (system, contents, truth), drain3_ids in zip(systems, drain3, strict=True):
        miner = TemplateMiner()
        online = [miner.add(message)[0] for message in contents]
        final = [miner.resolve(tid) for tid in online]
        rows.append(
            (
                system,
                group_accuracy(truth, final),
                group_accuracy(truth, online),
                group_accuracy(truth, drain3_ids),
            )
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument(
        "--variant", choices=["opsflow", "opsflow-mask-all"], help=argparse.SUPPRESS
    )
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run_opsflow(args.input, args.variant == "opsflow")))
        return

    python = drain3_python()
    with tempfile.TemporaryDirectory(prefix="opsflow-templates-bench-") as tmp:
        workdir = Path(tmp)
        rows = accuracy(args.data, python, workdir)
        print("\nGroup accuracy on Loghub-2k (corrected truth), one configuration for all")
        print(f"{'system':<11} {'opsflow':>8} {'(online)':>9} {'Drain3':>8}")
        for system, ga, online, drain3 in rows:
            print(f"{system:<11} {ga:>8.4f} {online:>9.4f} {drain3:>8.4f}")
        averages = [sum(r[i] for r in rows) / len(rows) for i in (1, 2, 3)]
        print(f"{'average':<11} {averages[0]:>8.4f} {averages[1]:>9.4f} {averages[2]:>8.4f}")

        lines = workdir / "lines.txt"
        print(f"\nwriting {args.lines:,} varied Loghub lines (not timed)...", flush=True)
        write_lines(args.data, args.lines, lines)
        ours = measure([sys.executable, __file__, "--variant", "opsflow", "--input", str(lines)])
        masked = measure(
            [sys.executable, __file__, "--variant", "opsflow-mask-all", "--input", str(lines)]
        )
        theirs = measure([str(python), str(DRAIN3_RUNNER), "throughput", str(lines)])

    print(f"\nThroughput: masking + mining of {ours['lines']:,} lines, one process each")
    print(f"{'':<28} {'lines/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'templates':>10}")
    for name, r in (
        ("opsflow", ours),
        ("opsflow, masking every line", masked),
        ("Drain3 0.9.11", theirs),
    ):
        print(
            f"{name:<28} {r['lines_per_s']:>10,.0f} {r['seconds']:>8.1f} "
            f"{r['peak_rss_mb']:>12.1f} {r['templates']:>10,}"
        )
    for name, r in (("opsflow", ours), ("opsflow, masking every line", masked)):
        print(f"{name} / Drain3 lines/s: {r['lines_per_s'] / theirs['lines_per_s']:.2f}x")


if __name__ == "__main__":
    main()
