"""A service's serving certificate expires after its renewal failed.

Playbook ``certificate_expiry``: A service's serving certificate expires after its renewal
failed: cert-manager reports the failure, TLS handshakes fail on both sides, a synthetics
canary fails and alarms, until the certificate is issued.

Its message catalogue is ``samples/data/scenarios/certificate_expiry.json``.
"""

from __future__ import annotations

import numpy as np

from samples.datafiles import load_json
from samples.scenarios.callers import URLS, callers_fail
from samples.scenarios.draw import draw_int, pick
from samples.scenarios.run import PlantedIncident, Run
from samples.scenarios.spec import EDGE_5XX, ScenarioSpec
from samples.scenarios.topology import NS, SERVICES

_DATA = load_json("scenarios", "certificate_expiry.json")
_HANDSHAKE = _DATA["handshake"]


def build(run: Run, inc: PlantedIncident) -> None:
    rng, s, tag, t0, end = run.rng, inc.target, inc.id, inc.start, inc.end
    inc.root_cause = f"service:{s}"
    inc.description = f"the serving certificate of {s} expired after its renewal failed"
    expiry, topo = t0 + 60, run.topo
    not_after = run.at(expiry)
    issuing = {"involved": "Certificate", "component": "cert-manager-certificates-issuing"}
    run.k8s_event(
        t0,
        tag,
        f"service:{s}",
        NS,
        "Failed",
        pick(
            rng,
            (
                "The certificate request has failed to complete and will be retried: issuer "
                '"shop-internal-ca" not ready: secret "shop-ca-key-pair" not found',
                f'Renewal of certificate "{s}-tls" failed: Failed to wait for order resource '
                f'"{s}-tls-1-{draw_int(rng, 10**9, 10**10)}" to become ready: order is in '
                '"errored" state',
            ),
        ),
        **issuing,
    )
    level, logger, texts = _HANDSHAKE[SERVICES[s][1]]
    run.stream(
        tag, topo.pods[s], expiry, end - 60, run.rate(0.06), level, texts, logger, minimum=15
    )
    run.stream(
        tag,
        topo.pods["checkout"],
        expiry,
        end - 60,
        run.rate(0.056),
        "ERROR",
        (
            f'I/O error on POST request for "{URLS[s]}": PKIX path validation failed: '
            "java.security.cert.CertPathValidatorException: validity check failed",
            "javax.net.ssl.SSLHandshakeException: PKIX path validation failed: java.security.cert."
            f"CertificateExpiredException: NotAfter: {not_after:%a %b %d %H:%M:%S UTC %Y}",
        ),
        f"c.s.checkout.client.{s.capitalize()}Client",
        minimum=15,
    )
    callers_fail(run, inc, "checkout", expiry + 10, end - 60, 0.1, "500")
    canary = f"cwsyn-{s}-tls-canary"
    for t in np.arange(expiry + rng.uniform(5, 55), end - 60, 60.0):
        message = (
            f'ERROR: Canary step failed: Get "https://{s}.shop.svc.cluster.local/healthz": tls: '
            "failed to verify certificate: x509: certificate has expired or is not yet valid: "
            f"current time {run.at(float(t)):%Y-%m-%dT%H:%M:%SZ} is after "
            f"{not_after:%Y-%m-%dT%H:%M:%SZ}"
        )
        run.emit(
            float(t),
            tag,
            "cloudwatch",
            "log",
            f"function:{canary}",
            [f"service:{s}"],
            "error",
            message,
            {"log_group": f"/aws/lambda/{canary}"},
        )
    ta = expiry + rng.uniform(60, 120)
    run.alarm(
        ta,
        tag,
        f"service:{s}",
        f"synthetics-{s}-tls-canary-failed",
        "SuccessPercent",
        0,
        90,
        above=False,
    )
    title = (
        "SSLHandshakeException: PKIX path validation failed: java.security.cert."
        "CertPathValidatorException: validity check failed"
    )
    culprit, first = f"com.shop.checkout.client.{s.capitalize()}Client in call", expiry + 20
    run.sentry_issue(
        first + 30, tag, "checkout", title, culprit, first_seen=first, count=draw_int(rng, 40, 400)
    )
    run.sentry_events(tag, "checkout", title, culprit, first, end - 60, 1 / 20, minimum=5)
    run.k8s_event(
        end - 60,
        tag,
        f"service:{s}",
        NS,
        "Issuing",
        "The certificate has been successfully issued",
        warning=False,
        **issuing,
    )
    run.shape(
        tag,
        f"service:{s}",
        "request_rate",
        expiry,
        end - 60,
        run.base(f"service:{s}", "request_rate") * 0.03,
    )
    run.shape(tag, "service:checkout", "http_5xx_rate", expiry, end - 60, rng.uniform(20, 45))
    run.shape(tag, "service:frontend", "http_5xx_rate", expiry + 10, end - 60, rng.uniform(4, 12))


SPEC = ScenarioSpec(
    "certificate_expiry",
    "A service's serving certificate expires after its renewal failed",
    lambda topo: ["payments", "inventory"],
    build,
    (r"certificate|PKIX|TLS handshake|x509|SSL|tls-canary", EDGE_5XX),
)
