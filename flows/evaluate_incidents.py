"""How well does incident detection work? Measured on generated scenarios with ground truth."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from prefect import flow, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from samples.scenarios import SCENARIO_NAMES, generate
from tasks.incidents.anomaly.ensemble import AnomalyConfig
from tasks.incidents.embeddings import TemplateEmbedder
from tasks.incidents.evaluation import Report, ScenarioScore, evaluate
from tasks.incidents.pipeline import run_pipeline

TABLE_KEY = "evaluate-incidents-scores"
SUMMARY_KEY = "evaluate-incidents-summary"
TARGETS = {"precision": 0.8, "recall": 0.7}  # the seeds' bar; we aim for 0.9 / 0.9


class EvaluationResult(BaseModel):
    """Result of ``evaluate_incidents``: per-run scores and the micro-averaged overall."""

    runs: list[ScenarioScore]
    overall: ScenarioScore
    meets_targets: bool = Field(description="overall precision > 0.8 and recall > 0.7")
    table: str = Field(description="The scores as an aligned text table")


@task(name="evaluate-scenario", cache_policy=NO_CACHE, persist_result=False)
def evaluate_scenario(
    names: list[str], seed: int, lines: int, overlap: bool, window_minutes: int
) -> ScenarioScore:
    """Generate one run, put it through the detection pipeline, score it against the truth."""
    scenario = generate(names, seed=seed, lines=lines, overlap=overlap)
    result = run_pipeline(
        scenario.events,
        scenario.metrics,
        config=AnomalyConfig(),
        window=timedelta(minutes=window_minutes),
        dependencies=scenario.dependencies,
        embedder=TemplateEmbedder(),
    )
    label = "+".join(names) if len(names) <= 2 else f"{len(names)} scenarios, one run"
    label += " (overlapping)" if overlap else ""
    return evaluate(
        result.incidents,
        result.signals,
        scenario.truth,
        name=label,
        clustering=result.space.quality or None,
    )


@flow(name="evaluate-incidents", persist_result=True, result_serializer="json", log_prints=True)
def evaluate_incidents(
    scenarios: list[Literal[SCENARIO_NAMES]] = list(SCENARIO_NAMES),  # type: ignore[valid-type]  # noqa: B006
    seeds: Annotated[list[int], Field(min_length=1, max_length=20)] = [7],  # noqa: B006
    lines: Annotated[int, Field(ge=2000, le=500_000)] = 20_000,
    combined_run: bool = True,
    overlapping_run: bool = True,
    correlation_window_minutes: Annotated[int, Field(ge=1, le=240)] = 10,
) -> EvaluationResult:
    """Score incident detection on every bundled scenario: correlation P/R/F1, root cause.

    Each scenario is generated (noise included), run through exactly the pipeline
    ``detect-incidents`` uses, and compared with its ground truth: correlation
    precision, recall and F1 (incidents matched to true incidents), pairwise signal
    precision/recall, root-cause top-1 accuracy, and template clustering quality
    (silhouette, Davies-Bouldin).

    Args:
        scenarios: which scenarios to run, one run each per seed.
        seeds: random seeds; more seeds, steadier figures.
        lines: events per generated run.
        combined_run: also one run with every chosen scenario at different times.
        overlapping_run: also one run with two incidents at once on different entities.
        correlation_window_minutes: the correlation window, as in detect-incidents.

    Returns:
        EvaluationResult with each run's score and the overall (micro-averaged) one.

    Example:
        ```python
        from flows.evaluate_incidents import evaluate_incidents

        result = evaluate_incidents(scenarios=["bad_rollout", "memory_leak_oom"], seeds=[1, 2])
        print(result.table)
        ```
    """
    runs: list[tuple[list[str], int, bool]] = [
        ([name], s, False) for s in seeds for name in scenarios
    ]
    if combined_run and len(scenarios) > 1:
        runs += [(list(scenarios), s, False) for s in seeds]
    if overlapping_run:
        pair = [n for n in ("bad_rollout", "noisy_neighbour_cpu") if n in scenarios]
        if pair:
            runs += [(pair, s, True) for s in seeds]
    futures = [
        evaluate_scenario.submit(names, seed, lines, overlap, correlation_window_minutes)
        for names, seed, overlap in runs
    ]
    report = Report()
    for future in futures:
        report.add(future.result())
    overall = report.overall()
    table = report.to_text()
    create_table_artifact(key=TABLE_KEY, table=report.rows(), description="Scores per run")
    create_markdown_artifact(
        key=SUMMARY_KEY,
        markdown="# Incident detection evaluation\n\n" + report.to_markdown(),
        description="Correlation precision/recall/F1, root cause, clustering",
    )
    print("\n" + table)
    return EvaluationResult(
        runs=report.scores,
        overall=overall,
        meets_targets=overall.precision > TARGETS["precision"]
        and overall.recall > TARGETS["recall"],
        table=table,
    )
