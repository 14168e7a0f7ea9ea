"""What the callers of a failing service say: each caller's own words for a failed call,
the edge's 5xx, and the edge's 5xx alarm.

One failure is worded differently by each service (a timeout is ``SocketTimeoutException:
Read timed out`` in checkout and ``timeout of 10000ms exceeded`` in the Node frontend), so
grouping has to be semantic, not textual. The wordings are in
``samples/data/scenarios/callers.json``.
"""

from __future__ import annotations

from samples.datafiles import load_json
from samples.scenarios.dialects import pino_fields
from samples.scenarios.draw import pick
from samples.scenarios.run import PlantedIncident, Run

_DATA = load_json("scenarios", "callers.json")
URLS: dict[str, str] = _DATA["urls"]  # callee -> the URL its callers call
# how checkout (Java) and the frontend (Node, axios) word a failed call, per failure kind
_CHECKOUT_SAYS: dict[str, list[str]] = _DATA["checkout_says"]
_FRONTEND_SAYS: dict[str, str] = _DATA["frontend_says"]
_EDGE_STATUS: dict[str, int] = _DATA["edge_status"]


def callers_fail(
    run: Run, inc: PlantedIncident, callee: str, t0: float, t1: float, share: float, kind: str
) -> None:
    """Failed calls in the app services calling ``callee``, each in its words, and edge 5xx."""
    tag, topo = inc.id, run.topo
    for caller in topo.callers[callee]:
        if caller == "checkout":
            texts = tuple(x.format(url=URLS[callee], callee=callee) for x in _CHECKOUT_SAYS[kind])
            logger, container = f"c.s.checkout.client.{callee.capitalize()}Client", None
        elif caller == "frontend":
            texts = ("checkout request failed",)
            logger = pino_fields(
                err={"type": "AxiosError", "message": _FRONTEND_SAYS[kind]}, upstream=callee
            )
            container = "web"
        else:  # only checkout and the frontend log their failed calls
            continue
        run.stream(
            tag,
            topo.pods[caller],
            t0,
            t1,
            run.rate(0.16) * share,
            "ERROR",
            texts,
            logger,
            minimum=4,
            container=container,
        )
    status, rng = _EDGE_STATUS[kind], run.rng
    for t in run.times(t0, t1, run.rate(0.30) * share * 0.6, minimum=4):
        rt = rng.uniform(0.5, 10) if kind == "timeout" else None
        run.access(t, tag, "POST", "/api/checkout", pick(rng, (status, status, 500, 503)), rt)


def edge_alarm(run: Run, inc: PlantedIncident, t: float) -> None:
    name, metric, ok = "shop-alb-5xx-high", "HTTPCode_Target_5XX_Count", inc.end + 60
    run.alarm(t, inc.id, "service:frontend", name, metric, run.rng.uniform(25, 80), 10)
    run.alarm(ok, inc.id, "service:frontend", name, metric, 2, 10, above=False, state="OK")
