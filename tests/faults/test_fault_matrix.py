"""`make test-faults`: each fault of the matrix (tests/faults/matrix.py) struck FAULT_RUNS
times (5 unless set) with a call in every phase, against the targets of the pair: no caller
dropped, no alert lost or doubled, nothing left in Asterisk, and no caller without a driver
for 3 s or more. An Asterisk restart ends every call with it: there, every call's alert must
still be written, once. Each fault's figures go to build/fault-matrix/ for the table."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ari_controller.store.migrate import migrate
from ari_controller.testing.postgres import ThrowawayPostgres
from tests.faults.matrix import FAULTS, PHASES, Outcome, run_once, summary
from tests.fixtures_postgres import (
    create_database,
    dsn_with_database,
    migrated_database,
    run_async,
)
from tests.test_daemon_service import NotifySocket, notify  # noqa: F401 (a fixture)

RUNS = int(os.environ.get("FAULT_RUNS", "5"))
REPORT_DIR = Path(os.environ.get("FAULT_REPORT_DIR", "build/fault-matrix"))
UNDRIVEN_LIMIT_S = 3.0

pytestmark = [pytest.mark.faults, pytest.mark.timeout(RUNS * 180 + 60)]


@pytest.fixture(scope="module")
def postgres() -> Iterator[ThrowawayPostgres]:
    """A server of the matrix's own, whatever DATABASE_URL says: one fault stops it."""
    server = ThrowawayPostgres().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def template(postgres: ThrowawayPostgres) -> str:
    run_async(lambda: create_database(postgres.dsn, "matrix_template"))
    run_async(lambda: migrate(dsn_with_database(postgres.dsn, "matrix_template")))
    return "matrix_template"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def write_report(fault: str, cells: dict[str, Any], outcomes: list[Outcome]) -> None:
    REPORT_DIR.mkdir(parents=True, exist_ok=True)
    report = {
        "fault": fault,
        "order": list(FAULTS).index(fault),
        "calls_survive": FAULTS[fault].calls_survive,
        "cells": cells,
        "runs": [o.to_json() for o in outcomes],
    }
    (REPORT_DIR / f"{slug(fault)}.json").write_text(json.dumps(report, indent=1))


@pytest.mark.parametrize("fault", list(FAULTS))
async def test_fault(
    fault: str,
    postgres: ThrowawayPostgres,
    template: str,
    tmp_path: Path,
    notify: NotifySocket,  # noqa: F811 (the fixture imported above)
) -> None:
    outcomes: list[Outcome] = []
    for run in range(RUNS):
        with migrated_database(postgres.dsn, template, prefix="matrix") as dsn:
            outcome = await run_once(FAULTS[fault], tmp_path / f"run{run}", dsn, postgres, notify)
        outcomes.append(outcome)
        print(f"{fault} run {run + 1}: {json.dumps(outcome.to_json())}")
    cells = summary(outcomes)
    write_report(fault, cells, outcomes)
    story = json.dumps([o.to_json() for o in outcomes], indent=1)
    for phase in PHASES:
        cell = cells[phase]
        assert cell["alerts_lost"] == 0 and cell["alerts_doubled"] == 0, (phase, story)
        assert cell["left"] == 0, (phase, story)
        if FAULTS[fault].calls_survive:
            assert cell["dropped"] == 0, (phase, story)
            assert cell["undriven_max_s"] < UNDRIVEN_LIMIT_S, (phase, story)
    assert all(o.left_unattributed == 0 for o in outcomes), story
