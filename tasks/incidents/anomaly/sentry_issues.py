"""Detector ``sentry`` (floor 0.5): Sentry issues new or regressed in the detection period.

An ``issue`` first seen in the detection period (``sentry_new_issue``) or regressed
(``sentry_regression``): ``raw = sev * (1 + 0.5 * min(1, log1p(count) / log1p(100)))``;
its ``error_event`` events (same issue id, or same title and entity) are its evidence.

Attributes read from events (``tasks.telemetry.sentry`` maps into these; first match
wins): issue id ``issue_id``/``issueId``/``issue``/``group_id``/``id``,
``firstSeen``/``first_seen``, ``substatus`` (``regressed``),
``isRegression``/``is_regression``, ``count``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tasks.common.times import parse_time_or_none
from tasks.incidents.anomaly.context import (
    Context,
    Draft,
    epoch,
    first_value,
    group_rows,
    severity_factor,
    utc,
)

_ISSUE_ID_KEYS = ("issue_id", "issueId", "issue", "group_id", "id")
_FIRST_SEEN_KEYS = ("firstSeen", "first_seen")
_REGRESSION_KEYS = ("isRegression", "is_regression")
_TRUE = {"true", "1", "yes"}


def _epoch_or_nan(value: str | None) -> float:
    stamp = parse_time_or_none(value)
    return math.nan if stamp is None else epoch(stamp)


def detect_sentry_issues(ctx: Context) -> list[Draft]:
    tl = ctx.timeline
    kinds = ctx.col["kind"]
    rows = np.flatnonzero((kinds == "issue") | (kinds == "error_event"))
    if not len(rows):
        return []
    found = [ctx.events[int(p)] for p in rows]
    # Error events without an issue id belong to the issue with their title on their entity.
    by_title = {
        (e.entity, e.message): first_value(e.attributes, _ISSUE_ID_KEYS)
        or f"{e.entity}: {e.message}"
        for e in found
        if e.kind == "issue"
    }
    records = []
    for event in found:
        attrs = event.attributes
        is_issue = event.kind == "issue"
        regressed = is_issue and (
            (attrs.get("substatus") or "").lower() == "regressed"
            or (first_value(attrs, _REGRESSION_KEYS) or "").lower() in _TRUE
        )
        count = first_value(attrs, ("count",)) if is_issue else None
        records.append(
            (
                first_value(attrs, _ISSUE_ID_KEYS)
                or by_title.get((event.entity, event.message))
                or f"{event.entity}: {event.message}",
                is_issue,
                _epoch_or_nan(first_value(attrs, _FIRST_SEEN_KEYS)) if is_issue else math.nan,
                regressed,
                float(count) if count and count.replace(".", "", 1).isdigit() else 0.0,
            )
        )
    table = pd.DataFrame(records, columns=["key", "issue", "first_seen", "regressed", "count"])
    table["row"] = rows
    table["t"] = ctx.col["t"][rows]
    table["sev"] = ctx.col["sev"][rows]
    per = table.groupby("key").agg(
        first_seen=("first_seen", "min"),
        t_first=("t", "min"),
        count=("count", "max"),
        sev=("sev", "max"),
        issue=("issue", "any"),
    )
    per = per[per["issue"]]  # error events alone do not say whether an issue is new
    first_seen = per["first_seen"].fillna(per["t_first"]).to_numpy()
    regress = table[table["regressed"]].groupby("key")["t"].min()
    origin = tl.origin
    cand_t, cand_key, cand_kind = [], [], []
    for key, fs in zip(per.index, first_seen, strict=True):
        t_reg = regress.get(key)
        if t_reg is not None and t_reg >= origin:
            cand_t.append(t_reg), cand_key.append(key), cand_kind.append("sentry_regression")
        elif fs >= origin:
            cand_t.append(fs), cand_key.append(key), cand_kind.append("sentry_new_issue")
        elif t_reg is not None:  # baseline regression: history
            cand_t.append(t_reg), cand_key.append(key), cand_kind.append("history")
        else:  # first seen in the baseline: history
            cand_t.append(fs), cand_key.append(key), cand_kind.append("history")
    w = tl.window(np.asarray(cand_t, dtype=np.float64))
    det_counts = table[table["t"] >= origin].groupby("key").size()
    count = np.maximum(per["count"].to_numpy(), det_counts.reindex(per.index).fillna(0).to_numpy())
    raw = severity_factor(per["sev"].to_numpy()) * (
        1.0 + 0.5 * np.minimum(1.0, np.log1p(count) / math.log1p(100))
    )
    candidates = pd.DataFrame({"key": cand_key, "w": w, "raw": raw})
    runs = ctx.runs("sentry", candidates[candidates["w"] >= tl.first], warmup=ctx.warmup)
    if runs.empty:
        return []
    kind_of = dict(zip(cand_key, cand_kind, strict=True))
    by_key = group_rows(table, table["key"])
    t_all = table["t"].to_numpy()
    drafts = []
    for run in runs.itertuples(index=False):
        members = by_key[run.key]
        members = members[t_all[members] >= origin]
        info = ctx.describe(table["row"].to_numpy()[members])
        kind = kind_of[run.key]
        issue_rows = [r for r in members if table["issue"].iat[r]]
        message = ctx.events[int(table["row"].iat[issue_rows[0]])].message
        label = "Sentry regression" if kind == "sentry_regression" else "New Sentry issue"
        evidence: dict[str, float | str] = {
            "issue": str(run.key),
            "count": float(count[per.index.get_loc(run.key)]),
            "raw": float(run.raw),
            "threshold": float(run.thr),
        }
        fs = first_seen[per.index.get_loc(run.key)]
        if np.isfinite(fs):
            evidence["first_seen"] = utc(float(fs)).isoformat()
            if kind == "sentry_new_issue":
                info["start"] = min(info["start"], float(fs))
        info["template_id"] = None
        drafts.append(
            Draft(
                kind=kind,
                detector="sentry",
                key=str(run.key),
                title=f"{label} on {info['entity']}: {message[:120]}",
                raw=float(run.raw),
                thr=float(run.thr),
                window=int(run.w0),
                evidence=evidence,
                **info,
            )
        )
    return drafts
