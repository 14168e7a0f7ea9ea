"""Deploys as ``deploy`` signals: context for correlation and remediation, not anomalies.

``deploy`` events, and annotations that mention a deploy, release or rollout, from
``deploy_lookback_seconds`` before ``baseline_end`` on, become ``deploy`` signals with
the fixed low score ``weight``.
"""

from __future__ import annotations

import re

import numpy as np

from tasks.incidents.anomaly.context import Context, Draft

_DEPLOY_WORDS = re.compile(r"\b(deploy\w*|release\w*|rollout\w*|rolled out|rolling update)\b", re.I)


def detect_deploys(ctx: Context) -> list[Draft]:
    tl = ctx.timeline
    since = tl.origin - ctx.config.deploy_lookback_seconds
    kinds, times = ctx.col["kind"], ctx.col["t"]
    drafts = []
    for row in np.flatnonzero(np.isin(kinds, ("deploy", "annotation")) & (times >= since)):
        event = ctx.events[int(row)]
        if event.kind == "annotation" and not _DEPLOY_WORDS.search(
            f"{event.message} {event.attributes.get('tags', '')}"
        ):
            continue
        info = ctx.describe(np.array([row]))
        info.update(template_id=None, severity="info")
        drafts.append(
            Draft(
                kind="deploy",
                detector="deploy",
                key=str(int(row)),
                title=f"Deploy on {event.entity}: {event.message[:120]}",
                raw=1.0,
                thr=1.0,
                window=int(tl.window(np.array([times[row]]))[0]),
                evidence={k: str(v) for k, v in list(event.attributes.items())[:10]},
                **info,
            )
        )
    return drafts
