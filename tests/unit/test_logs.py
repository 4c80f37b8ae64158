"""The JSON log format: one object per line, the running job's ids, exceptions inside."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from inboxd import logs


@pytest.fixture
def json_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield capsys
    root.handlers[:], level = saved
    root.setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, object]]:
    return [json.loads(line) for line in capsys.readouterr().err.splitlines()]


def test_lines_in_a_job_carry_its_ids_and_exceptions_stay_on_one_line(
    json_logs: pytest.CaptureFixture[str],
) -> None:
    # Configured here: capsys's stderr is in place only while the test runs.
    logs.configure("INFO", "json")
    log = logging.getLogger("inboxd.test")
    with logs.job_context("job-1", "acct-1"):
        log.info("inside %s", "the job", extra={"action": "demo"})
        try:
            raise ValueError("bad\nthing")
        except ValueError:
            log.exception("it failed")
    log.info("outside")
    inside, failed, outside = _lines(json_logs)
    assert inside["message"] == "inside the job" and inside["logger"] == "inboxd.test"
    assert (inside["job_id"], inside["account_id"], inside["action"]) == ("job-1", "acct-1", "demo")
    assert failed["level"] == "ERROR" and "ValueError: bad" in str(failed["exception"])
    assert "job_id" not in outside and logs.current_job() is None


def test_an_explicit_job_id_wins_over_the_context(json_logs: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    with logs.job_context("job-1", None):
        logging.getLogger("inboxd.test").warning("about another", extra={"job_id": "job-2"})
    (line,) = _lines(json_logs)
    assert line["job_id"] == "job-2" and line["account_id"] is None


def test_unknown_formats_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown log format"):
        logs.configure("INFO", "xml")  # type: ignore[arg-type]


def test_a_pool_thread_adopts_its_creators_job(json_logs: pytest.CaptureFixture[str]) -> None:
    logs.configure("INFO", "json")
    with logs.job_context("job-3", "acct-3"):
        pool = ThreadPoolExecutor(1, initializer=logs.adopt, initargs=(logs.current_job(),))
    with pool:
        pool.submit(logging.getLogger("inboxd.test").info, "from the pool").result()
    (line,) = _lines(json_logs)
    assert (line["job_id"], line["account_id"]) == ("job-3", "acct-3")
