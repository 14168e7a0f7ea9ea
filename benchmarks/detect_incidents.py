"""End-to-end incident detection on a 100,000-line, four-source scenario: wall time and
peak memory, next to a naive baseline that embeds every log line.

Each variant runs in its own process (so its peak RSS is its own), on the same
generated scenario (bad_rollout + db_connection_exhaustion, seed 11):

  opsflow  tasks.incidents.pipeline.run_pipeline: templates -> embed unique templates ->
           HDBSCAN -> anomaly ensemble -> correlation -> suggestions. The embedding cache
           starts empty (a cold run), so the model load and every template embedding count.
  naive    the same model embedding every log line (no template mining), the step that
           makes per-line pipelines slow; measured on a slice and extrapolated when the
           whole run would take more than ~5 minutes (the output says so).

Usage:  .venv/bin/python benchmarks/detect_incidents.py [--lines 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

SCENARIOS = ["bad_rollout", "db_connection_exhaustion"]
SEED = 11
NAIVE_SLICE = 5_000
NAIVE_LIMIT_S = 300.0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_opsflow(lines: int, cache: Path) -> dict:
    from samples.scenarios import generate
    from tasks.incidents.embeddings import TemplateEmbedder
    from tasks.incidents.pipeline import run_pipeline

    scenario = generate(SCENARIOS, seed=SEED, lines=lines)
    start = time.perf_counter()
    result = run_pipeline(
        scenario.events,
        scenario.metrics,
        dependencies=scenario.dependencies,
        embedder=TemplateEmbedder(cache_dir=cache),
    )
    seconds = time.perf_counter() - start
    from tasks.incidents.evaluation import evaluate

    score = evaluate(result.incidents, result.signals, scenario.truth)
    return {
        "seconds": seconds,
        "events": len(scenario.events),
        "log_lines": result.mined.log_lines,
        "templates": len(result.mined.templates),
        "incidents": len(result.incidents),
        "precision": score.precision,
        "recall": score.recall,
        "root_cause": score.root_cause_accuracy,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_naive(lines: int, limit: int) -> dict:
    from samples.scenarios import generate
    from tasks.incidents.embeddings import load_model

    scenario = generate(SCENARIOS, seed=SEED, lines=lines)
    messages = [e.message for e in scenario.events if e.kind == "log"]
    sample = messages[:limit] if limit else messages
    start = time.perf_counter()
    model = load_model()
    model.encode(sample, batch_size=64, normalize_embeddings=True, show_progress_bar=False)
    seconds = time.perf_counter() - start
    return {
        "seconds": seconds,
        "log_lines": len(messages),
        "embedded": len(sample),
        "peak_rss_mb": peak_rss_mb(),
    }


def spawn(variant: str, lines: int, extra: list[str]) -> dict:
    cmd = [sys.executable, __file__, "--variant", variant, "--lines", str(lines), *extra]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{variant} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--variant", choices=["opsflow", "naive"])
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--limit", type=int, default=0)
    args = parser.parse_args()
    if args.variant == "opsflow":
        print(json.dumps(run_opsflow(args.lines, args.cache)))
        return
    if args.variant == "naive":
        print(json.dumps(run_naive(args.lines, args.limit)))
        return

    print(f"scenario: {' + '.join(SCENARIOS)}, seed {SEED}, {args.lines:,} events requested")
    print(f"machine: {os.cpu_count()} CPUs, python {sys.version.split()[0]}")
    with tempfile.TemporaryDirectory(prefix="opsflow-incident-bench-") as tmp:
        ops = spawn("opsflow", args.lines, ["--cache", tmp])
    naive = spawn("naive", args.lines, ["--limit", str(NAIVE_SLICE)])
    per_line = naive["seconds"] / naive["embedded"]
    naive_total = per_line * naive["log_lines"]
    note = (
        f"extrapolated from {naive['embedded']:,} lines embedded in {naive['seconds']:.1f} s"
        if naive["embedded"] < naive["log_lines"]
        else ""
    )
    print()
    print(
        f"{'variant':<10} {'events':>9} {'log lines':>10} {'wall s':>9} {'peak RSS MB':>12}  note"
    )
    print(
        f"{'opsflow':<10} {ops['events']:>9,} {ops['log_lines']:>10,} {ops['seconds']:>9.1f} "
        f"{ops['peak_rss_mb']:>12,.0f}  {ops['templates']} templates embedded (cold cache), "
        f"{ops['incidents']} incidents; P {ops['precision']:.2f} R {ops['recall']:.2f} "
        f"root cause {ops['root_cause']}"
    )
    print(
        f"{'naive':<10} {ops['events']:>9,} {naive['log_lines']:>10,} {naive_total:>9.1f} "
        f"{naive['peak_rss_mb']:>12,.0f}  embedding only, every line; {note}"
    )
    print(
        f"\nopsflow end to end is {naive_total / ops['seconds']:.0f}x faster than naive embedding"
    )
    print(f"(measured {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    main()
