#!/usr/bin/env python3
"""Fuzz docs/openapi.yaml against a running metrics-collector with schemathesis.

    python3 tests/openapi/check.py http://127.0.0.1:9100 [--max-examples N] [--max-time S]
        [--operation OPERATION_ID ...] [--spec PATH] [--report-dir DIR] [--explore [--seed N]]

Every operation of the document is generated for (examples, coverage and fuzzing phases,
positive and negative data) and each answer is checked: no 5xx, a documented status,
content type, headers and body. Exits 0 when every check passed, 1 on any failure (or when
the run passed its time budget), 2 on a usage error, 3 when schemathesis is not installed.

Bounded and repeatable: at most --max-examples cases per operation and phase, Hypothesis'
deterministic mode (the same cases every run; --explore trades it for random cases from
--seed), no example database, one worker, and the whole run stopped after --max-time
seconds.

`GET /metrics/stream` never ends by itself. It is fuzzed all the same, made finite:
schemathesis reads an event stream only up to `max-stream-events` events or its request
timeout and then checks the events it has (each against `StreamEvent`, the `data` of a
sample against `Metrics`). Here that is ONE event and a 3 s timeout: every stream sends
the latest sample (or the first resumed one) at once, or the next sample within one live
interval.

This file is also the run's schemathesis hooks module (the config written below names it):
imported by schemathesis, it registers the checks and the deserializer defined here; run as
a script, it starts the run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SPEC = os.path.join(ROOT, "docs", "openapi.yaml")

# The checks asked for. `unsupported_method` and `allow_header_conformance` send the
# methods a path does not document and expect 405 with `Allow: GET, HEAD` (SPEC §3).
# Not used: `positive_data_acceptance` (a schema-valid history query can still be a 400:
# `end` before `start`, too many buckets), `negative_data_rejection` (an empty
# `Last-Event-ID` is no resume point, by design), and the stateful/auth checks (no links,
# no auth).
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "unsupported_method",
    "allow_header_conformance",
]

# Defined below, in the hooks.
CUSTOM_CHECKS = ["exact_prometheus_media_type", "accept_negotiation"]

# SPEC §8: the two Prometheus media types, to the byte (schemathesis' own content type
# check compares type and subtype only).
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"
JSON = "application/json"
NEGOTIATING = {"getMetrics", "headMetrics", "getPrometheus", "headPrometheus"}

# What the `Accept` examples of the document (and a few more) must give (SPEC §8), on
# /metrics and on /metrics/prometheus. An `Accept` not listed is only checked for
# conformance. schemathesis sends `*/*` when a case has no `Accept`.
PROMETHEUS_2_42 = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)
PROMETHEUS_2_49 = (
    "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;q=0.5,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,"
    "text/plain;version=0.0.4;q=0.3,*/*;q=0.2"
)
PROMETHEUS_3_3 = (
    "application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.6,"
    "application/openmetrics-text;version=0.0.1;escaping=allow-utf-8;q=0.5,"
    "text/plain;version=1.0.0;escaping=allow-utf-8;q=0.4,text/plain;version=0.0.4;escaping=allow-utf-8;q=0.3,"
    "*/*;q=0.2"
)
PROMETHEUS_OLD = "application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
PROMETHEUS_TEXT_ONLY = "text/plain;version=0.0.4;q=0.6,*/*;q=0.5"
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
# accept: (on /metrics, on /metrics/prometheus)
EXPECTED = {
    "*/*": (JSON, PROMETHEUS_TEXT),
    "application/json": (JSON, PROMETHEUS_TEXT),
    "application/json, text/plain, */*": (JSON, PROMETHEUS_TEXT),
    BROWSER: (JSON, PROMETHEUS_TEXT),
    "application/json, text/plain; version=0.0.4": (JSON, PROMETHEUS_TEXT),
    "text/plain; version=0.0.4": (PROMETHEUS_TEXT, PROMETHEUS_TEXT),
    "application/openmetrics-text; version=1.0.0": (OPENMETRICS, OPENMETRICS),
    PROMETHEUS_2_42: (OPENMETRICS, OPENMETRICS),
    PROMETHEUS_2_49: (OPENMETRICS, OPENMETRICS),
    PROMETHEUS_3: (OPENMETRICS, OPENMETRICS),
    PROMETHEUS_3_3: (OPENMETRICS, OPENMETRICS),
    PROMETHEUS_OLD: (PROMETHEUS_TEXT, PROMETHEUS_TEXT),
    PROMETHEUS_TEXT_ONLY: (PROMETHEUS_TEXT, PROMETHEUS_TEXT),
}


def _register_hooks() -> None:
    """What schemathesis gets from this module when it imports it as its hooks file."""
    import schemathesis

    @schemathesis.deserializer("application/openmetrics-text")
    def _openmetrics(ctx, response):  # noqa: ARG001 - the signature schemathesis calls
        return response.content.decode("utf-8")

    def _operation_id(case) -> str | None:
        return case.operation.definition.raw.get("operationId")

    def _accept(case) -> str | None:
        for name, value in (case.headers or {}).items():
            if name.lower() == "accept":
                return value
        return None

    @schemathesis.check
    def exact_prometheus_media_type(ctx, response, case):  # noqa: ARG001
        """SPEC §8: a Prometheus body carries exactly one of the two content types."""
        if _operation_id(case) not in NEGOTIATING or response.status_code != 200:
            return None
        got = (response.headers.get("content-type") or [""])[0]
        allowed = [PROMETHEUS_TEXT, OPENMETRICS]
        if _operation_id(case) in {"getMetrics", "headMetrics"}:
            allowed.append(JSON)
        if got not in allowed:
            raise AssertionError(f"Content-Type {got!r} is none of {allowed}")
        return None

    @schemathesis.check
    def accept_negotiation(ctx, response, case):  # noqa: ARG001
        """SPEC §8: the `Accept` values of `EXPECTED` get the format SPEC promises."""
        operation = _operation_id(case)
        if operation not in NEGOTIATING or response.status_code != 200:
            return None
        accept = _accept(case)
        if accept is None:
            accept = response.request.headers.get("accept")
        if accept not in EXPECTED:
            return None
        on_metrics, on_prometheus = EXPECTED[accept]
        want = on_metrics if operation in {"getMetrics", "headMetrics"} else on_prometheus
        got = (response.headers.get("content-type") or [""])[0]
        if got != want:
            raise AssertionError(f"Accept: {accept!r} gave Content-Type {got!r}, not {want!r}")
        return None


if __name__ != "__main__":
    # Imported by schemathesis as the hooks file of the run below.
    _register_hooks()


def _config(args: argparse.Namespace) -> str:
    """The schemathesis.toml of this run."""
    hooks = os.path.abspath(__file__)
    enabled = "\n".join(f"{c}.enabled = true" for c in CHECKS + CUSTOM_CHECKS)
    return f"""
hooks = {hooks!r}
workers = 1
{f"seed = {args.seed}" if args.explore else ""}
request-timeout = 10
max-failures = 50
suppress-health-check = ["all"]

[generation]
mode = "all"
max-examples = {args.max_examples}
deterministic = {"false" if args.explore else "true"}
database = "none"

[phases.examples]
enabled = true
[phases.coverage]
enabled = true
[phases.fuzzing]
enabled = true
[phases.stateful]
enabled = false

[checks]
enabled = false
{enabled}
# 503 is the service's own state (starting, no fresh sample, every stream slot taken),
# never an answer to what a client sent; status_code_conformance still fails it on an
# operation that does not document it.
not_a_server_error.expected-statuses = ["1XX", "2XX", "3XX", "4XX", 503]

# The stream never ends: one event, then the connection is closed (see the top of this file).
[[operations]]
include-operation-id = "getStream"
max-stream-events = 1
request-timeout = 3
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url", help="where the service listens, e.g. http://127.0.0.1:9100")
    parser.add_argument("--max-examples", type=int, default=60, help="cases per operation and phase")
    parser.add_argument(
        "--explore",
        action="store_true",
        help="random cases from --seed instead of the deterministic ones (to look further)",
    )
    parser.add_argument("--seed", type=int, default=9100, help="the seed of --explore")
    parser.add_argument("--max-time", type=float, default=420.0, help="seconds for the whole run")
    parser.add_argument(
        "--operation",
        action="append",
        default=[],
        metavar="OPERATION_ID",
        help="fuzz only this operation (repeatable; default: every one)",
    )
    parser.add_argument("--spec", default=SPEC, help="the OpenAPI document (default: docs/openapi.yaml)")
    parser.add_argument("--report-dir", help="also write a JUnit report and a VCR cassette of every request there")
    args = parser.parse_args()

    try:
        import schemathesis  # noqa: F401
    except ImportError:
        print(
            "schemathesis not found: run `cargo xtask test` "
            "(it makes a venv from tests/openapi/requirements.txt)",
            file=sys.stderr,
        )
        return 3

    with tempfile.TemporaryDirectory(prefix="openapi-check-") as tmp:
        config = os.path.join(tmp, "schemathesis.toml")
        with open(config, "w", encoding="utf-8") as f:
            f.write(_config(args))
        command = [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "--config-file",
            config,
            "--no-color",
            "run",
            os.path.abspath(args.spec),
            "--url",
            args.base_url.rstrip("/"),
        ]
        for operation in args.operation:
            command += ["--include-operation-id", operation]
        if args.report_dir:
            command += ["--report", "junit,vcr", "--report-dir", args.report_dir]
        env = dict(os.environ)
        env.pop("SCHEMATHESIS_HOOKS", None)
        # The hooks file is this one: leave no __pycache__ beside it.
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        started = time.monotonic()
        print("+ " + " ".join(command), flush=True)
        try:
            done = subprocess.run(command, cwd=tmp, env=env, timeout=args.max_time, check=False)
        except subprocess.TimeoutExpired:
            print(f"openapi check: schemathesis ran past {args.max_time:.0f} s; stopped", file=sys.stderr)
            return 1
        took = time.monotonic() - started
        print(f"openapi check: schemathesis exited {done.returncode} after {took:.1f} s", flush=True)
        return 0 if done.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
