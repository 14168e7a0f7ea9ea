"""What the collect-costs flow shows a person: the markdown summary, the daily cost chart,
the rows of its table artifacts, the report files, and the quarantine CSV of each export.

Pure rendering and file writing; the flow (``flows.collect_costs``) publishes the
artifacts. ``headline`` and ``render_markdown`` read the flow's ``CostCollection`` result
(any object with its fields).

Example:
    ```python
    from samples.focus_exports import bundled_export_paths
    from tasks.costs.analysis import summarize
    from tasks.costs.normalize import normalize_file
    from tasks.costs.report import cost_chart, top_cost_rows

    summary = summarize(normalize_file(bundled_export_paths()[0]).table)
    for row in top_cost_rows(summary)[:3]:
        print(row)
    print(len(cost_chart(summary)), "bytes of SVG")
    ```
"""

from __future__ import annotations

import contextlib
import csv
from datetime import date
from pathlib import Path
from typing import Any

import pyarrow as pa

from tasks.common.atomic import atomic_path, write_text_atomic
from tasks.common.charts import line_chart_svg
from tasks.costs.analysis import CostSummary
from tasks.inventory.rules import Recommendation

REPORT_FILE = "collect-costs.md"
CHART_FILE = "collect-costs-daily.svg"


# ----------------------------------------------------------------------------- markdown


def headline(result: Any) -> str:
    """One line: rows, the period's cost, month to date and forecast, anomaly and
    recommendation counts (``result``: a ``CostCollection``)."""
    s = result.summary
    mtd = s.month_to_date
    text = (
        f"{result.dataset_rows:,} cost rows in {result.dataset}; "
        f"{s.first_day} to {s.last_day}: {s.effective_cost:,.2f} {s.currency}"
    )
    if mtd:
        text += (
            f"; {mtd.month} to date {mtd.effective_cost:,.2f}, "
            f"forecast {mtd.forecast_month_end:,.2f}"
        )
    return text + f"; {len(s.anomalies)} anomalies, {len(result.recommendations)} recommendations"


def render_markdown(result: Any, chart_uri: str | None = None) -> str:
    """The run summary a person reads in the Prefect UI (and in the report file).

    Args:
        result: the flow's ``CostCollection``.
        chart_uri: the daily cost chart to show (a file name or a ``data:`` URI).
    """
    s, cur = result.summary, result.summary.currency
    lines = ["# Cloud costs", "", headline(result) + ".", ""]
    if result.partial:
        lines += ["**Partial result.** Missing:", ""]
        lines += [f"- {m}" for m in result.missing] + [""]
    if chart_uri:
        lines += [f"![Daily cost by provider]({chart_uri})", ""]
    if s.month_to_date:
        m = s.month_to_date
        lines += [
            f"## {m.month}: month to date and forecast",
            "",
            "| provider | to date | forecast |",
            "|---|---:|---:|",
        ]
        for p, v in sorted(m.by_provider.items()):
            lines.append(f"| {p} | {v:,.2f} | {m.forecast_by_provider.get(p, v):,.2f} |")
        lines += [f"| **total** | **{m.effective_cost:,.2f}** | **{m.forecast_month_end:,.2f}** |"]
        lines += [""]
    lines += ["## By provider", "", f"| provider | effective ({cur}) | billed ({cur}) |"]
    lines += ["|---|---:|---:|"]
    lines += [
        f"| {t.key} | {t.effective_cost:,.2f} | {t.billed_cost:,.2f} |" for t in s.by_provider
    ]
    if s.anomalies:
        lines += [
            "",
            "## Cost anomalies",
            "",
            "| day | service | account | cost | baseline | jump |",
        ]
        lines += ["|---|---|---|---:|---:|---:|"]
        for a in s.anomalies[:10]:
            pct = f" ({a.jump_pct:+.0f}%)" if a.jump_pct is not None else ""
            lines.append(
                f"| {a.day} | {a.provider} {a.service} | {a.account} | {a.cost:,.2f} | "
                f"{a.baseline:,.2f} | {a.jump:+,.2f}{pct} |"
            )
    if s.top_movers:
        lines += ["", "## Top movers (last 7 days vs the 7 before)", ""]
        for mv in s.top_movers[:5]:
            pct = f" ({mv.change_pct:+.0f}%)" if mv.change_pct is not None else " (new)"
            lines.append(f"- {mv.provider} {mv.service}: {mv.change:+,.2f} {cur}{pct}")
    if result.recommendations:
        lines += ["", "## Recommendations", ""]
        for r in result.recommendations[:10]:
            lines.append(
                f"- **{r.title}**: save ~{r.estimated_monthly_saving:,.2f} {r.currency}/month. "
                f"{r.reason}"
            )
    q = result.quarantine
    if q.rows:
        lines += ["", f"## Quarantined rows: {q.rows:,}", ""]
        lines += [f"- {reason}: {n}" for reason, n in q.by_reason.items()]
        lines += ["", f"Rejected rows, reasons and raw values: `{q.folder}`"]
    lines += ["", "## Sources", "", "| source | status | rows | replaced | quarantined | note |"]
    lines += ["|---|---|---:|---:|---:|---|"]
    for o in result.sources:
        note = (o.reason or "billing periods " + ", ".join(o.periods)).replace("|", "/")
        lines.append(
            f"| {o.source} | {o.status} | {o.rows:,} | {o.rows_replaced:,} | {o.quarantined:,} "
            f"| {note} |"
        )
    lines += [""] + [f"- {n}" for n in result.notes]
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- chart, tables


def cost_chart(summary: CostSummary) -> str:
    """The daily cost per provider as SVG, a mark on the first day of each anomalous
    service (the five largest anomalies)."""
    series: dict[str, list[tuple[date, float]]] = {}
    for d in summary.daily:
        series.setdefault(d.provider, []).append((d.day, d.effective_cost))
    first_day: dict[str, date] = {}  # one mark per anomalous service, on its first day
    for a in summary.anomalies[:5]:
        label = f"{a.provider} {a.service}"
        first_day[label] = min(a.day, first_day.get(label, a.day))
    marks = sorted((d, label) for label, d in first_day.items())
    return line_chart_svg(
        series,
        title=f"Daily cost by provider ({summary.currency}, effective)",
        unit="$" if summary.currency == "USD" else "",
        marks=marks,
    )


def top_cost_rows(summary: CostSummary) -> list[dict[str, Any]]:
    """Rows of the top-costs table: every account, then every service."""
    return [
        {"group": "account", "key": t.key, "effective": t.effective_cost, "billed": t.billed_cost}
        for t in summary.by_account
    ] + [
        {"group": "service", "key": t.key, "effective": t.effective_cost, "billed": t.billed_cost}
        for t in summary.by_service
    ]


def recommendation_rows(recommendations: list[Recommendation]) -> list[dict[str, Any]]:
    """Rows of the recommendations table (one placeholder row when there is none)."""
    return [
        {
            "title": r.title,
            "monthly_saving": r.estimated_monthly_saving,
            "currency": r.currency,
            "risk": r.risk,
            "confidence": r.confidence,
            "action": r.action,
            "reason": r.reason,
        }
        for r in recommendations
    ] or [{"title": "no recommendation", "reason": "no steady on-demand compute spend found"}]


# ----------------------------------------------------------------------------- files


def write_report_files(result: Any, folder: Path, svg: str | None = None) -> list[str]:
    """Write the markdown report and its chart into ``folder``, atomically.

    Args:
        result: the flow's ``CostCollection``.
        folder: where (created if missing).
        svg: the chart, if already drawn (``cost_chart(result.summary)``).

    Returns:
        The report's path, then the chart's.
    """
    chart, report = folder / CHART_FILE, folder / REPORT_FILE
    write_text_atomic(chart, svg if svg is not None else cost_chart(result.summary))
    write_text_atomic(report, render_markdown(result, chart.name))
    return [str(report), str(chart)]


def quarantine_file_name(location: str) -> str:
    """A file name for the quarantine CSV of the export at ``location`` (no query string)."""
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in location.split("?")[0])
    return (keep[-120:] or "export") + ".csv"


class QuarantineCsv:
    """Rejected rows of one export as a CSV (source row, reason, raw values).

    Written to a temp file beside ``path`` that replaces it (``tasks.common.atomic``) when
    the block ends cleanly with at least one row; otherwise nothing is written.

    Example:
        ```python
        from pathlib import Path

        from samples.focus_exports import bundled_export_paths
        from tasks.costs.normalize import iter_normalized
        from tasks.costs.report import QuarantineCsv

        with QuarantineCsv(Path("quarantine") / "aws.csv") as out:
            for batch in iter_normalized(bundled_export_paths()[0]):
                out.write(batch.quarantine)
        print(out.rows, Path("quarantine/aws.csv").read_text().splitlines()[0])
        ```
    """

    def __init__(self, path: Path):
        self.path, self.rows = path, 0

    def __enter__(self) -> QuarantineCsv:
        self._stack = contextlib.ExitStack()
        self._temp = self._stack.enter_context(atomic_path(self.path))
        self._handle = self._stack.enter_context(self._temp.open("w", encoding="utf-8", newline=""))
        self._csv = csv.writer(self._handle)
        self._csv.writerow(["source_row", "reason", "raw_row"])
        return self

    def write(self, table: pa.Table) -> None:
        """Append the rows of a quarantine table (``QUARANTINE_SCHEMA``)."""
        if table.num_rows:
            cols = [table.column(c).to_pylist() for c in table.column_names[:3]]
            self._csv.writerows(zip(*cols, strict=True))
            self.rows += table.num_rows

    def __exit__(self, exc_type, exc, tb) -> bool:
        self._handle.close()
        if exc_type is None and not self.rows:
            self._temp.unlink()  # no rejected row: no file
        return self._stack.__exit__(exc_type, exc, tb)
