"""The server-log check of tests/conftest.py finds what it exists to find.

Every end-to-end test fails when a Prefect server it started logged an ERROR or a
traceback (the check runs after each test). These tests feed the checker logs with
and without such lines, in a folder the session's own check does not read.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.conftest import SERVER_LOG_NAME, ServerLogWatch, server_log_problems

START = """
 ___ ___ ___ ___ ___ ___ _____
| _ \\ _ \\ __| __| __/ __|_   _|

Configure Prefect to communicate with the server with:

    prefect config set PREFECT_API_URL=http://127.0.0.1:54163/api
19:15:16.101 | WARNING | prefect.server.utilities.messaging - slow consumer
"""

# What Prefect 3.8.8's scheduler logged on every loop with SQLAlchemy 2.1 (issue 9).
SCHEDULER_FAILURE = "\n".join(
    [
        "19:15:21.482 | ERROR   | prefect.server.services.scheduler - Unexpected error in:"
        " schedule_recent_deployments",
        "Traceback (most recent call last):",
        '  File ".../prefect/server/services/scheduler.py", line 330, in'
        " schedule_recent_deployments",
        "    await _insert_scheduled_flow_runs(session, runs)",
        "sqlalchemy.exc.InvalidRequestError: Can't evaluate bulk DML statement;"
        " please supply a bulk_dml decorated function",
        "",
    ]
)

BARE_TRACEBACK = """Traceback (most recent call last):
  File "uvicorn/protocols/http/httptools_impl.py", line 409, in run_asgi
KeyError: 'flow_run_id'
"""


@pytest.fixture
def outside_root():
    """A folder the session's autouse check does not scan (it reads tmp_path and $OPSFLOW_HOME)."""
    root = Path(tempfile.mkdtemp(prefix="server-log-check-"))
    yield root
    shutil.rmtree(root)


def test_a_clean_start_up_log_has_no_problems():
    assert server_log_problems(START) == []


@pytest.mark.parametrize("text", [SCHEDULER_FAILURE, BARE_TRACEBACK])
def test_an_error_line_or_a_traceback_is_a_problem_with_its_context(text):
    [passage] = server_log_problems(START + text)
    assert passage.splitlines()[-1] == text.splitlines()[-1]  # the exception line is shown


def _busy_record(header: str, cause: str) -> str:
    return "\n".join(
        [
            f"20:36:13.854 | ERROR   | {header}",
            "Traceback (most recent call last):",
            '  File ".../sqlalchemy/engine/base.py", line 2000, in _exec_single_context',
            f"sqlite3.OperationalError: {cause.split(') ', 1)[-1]}",
            "",
            "The above exception was the direct cause of the following exception:",
            "",
            "Traceback (most recent call last):",
            f"sqlalchemy.exc.OperationalError: {cause}",
            "[SQL: INSERT INTO task_run_state ...]",
            "",
        ]
    )


FLUSH = (
    "prefect.server.services.task_run_recorder - Error flushing 1 events (1 to retry, 0 dropped)"
)
VALIDATION = "prefect.server - Encountered error during state validation"
BUSY = "(sqlite3.OperationalError) database is locked"


@pytest.mark.parametrize("header", [FLUSH, VALIDATION])
def test_sqlite_being_busy_is_not_a_problem_but_the_next_record_is_read(header):
    log = START + _busy_record(header, BUSY) + SCHEDULER_FAILURE
    assert server_log_problems(log) == [SCHEDULER_FAILURE.strip()]


def test_an_error_with_another_cause_is_a_problem():
    assert server_log_problems(
        START + _busy_record(VALIDATION, "(sqlite3.OperationalError) no such table")
    )


def test_the_watch_reports_what_a_log_gained_once(outside_root):
    home = outside_root / "some-test0" / "home"
    home.mkdir(parents=True)
    log = home / SERVER_LOG_NAME
    log.write_text(START)
    watch = ServerLogWatch([outside_root])
    assert watch.new_problems() == {}

    with log.open("a") as f:
        f.write(SCHEDULER_FAILURE)
    problems = watch.new_problems()
    assert list(problems) == [log.resolve()]
    assert "InvalidRequestError: Can't evaluate bulk DML" in problems[log.resolve()][0]
    assert watch.new_problems() == {}  # reported once, to the test during which it appeared

    with log.open("a") as f:
        f.write("19:15:30.000 | ERROR   | prefect.server - half a line")  # no newline yet
    assert watch.new_problems() == {}
    with log.open("a") as f:
        f.write(" and the rest\n")
    assert "half a line and the rest" in watch.new_problems()[log.resolve()][0]


def test_the_session_watch_reads_the_homes_tests_create(server_log_watch, tmp_path, opsflow_home):
    """`opsflow serve` in a test's tmp_path (or a folder in it), and in the session home."""
    (tmp_path / "home").mkdir()
    probe = opsflow_home / "probe-home"
    probe.mkdir()
    try:
        logs = [
            tmp_path / SERVER_LOG_NAME,
            tmp_path / "home" / SERVER_LOG_NAME,
            probe / SERVER_LOG_NAME,
        ]
        for log in logs:
            log.write_text(START)
        assert {log.resolve() for log in logs} <= set(server_log_watch.logs())
    finally:
        shutil.rmtree(probe)
