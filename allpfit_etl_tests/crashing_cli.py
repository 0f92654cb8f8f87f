"""``python -m allpfit_etl_tests.crashing_cli POINT ARGS…``: the ``allpfit-etl`` CLI, killed with
SIGKILL at a named point of the Batch API path, as a power cut or the OOM killer would:

- ``after_upload``: the batch's input file was uploaded, the upload not yet recorded;
- ``after_create``: the batch was created, its id not yet recorded;
- ``mid_ingest``: part of a finished batch's answers were stored, the rest not.

The points are set from outside the product, by wrapping the calls the product makes."""

from __future__ import annotations

import functools
import os
import signal
import sys

import openai.resources.batches
import openai.resources.files

from allpfit_etl.analysis.batch import ingest
from allpfit_etl.cli.main import entry_point

ANSWERS_BEFORE_MID_INGEST_CRASH = 10


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _then_die(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        _die()
        return result
    return wrapper


def _die_after(calls: int, function):
    seen = 0

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        nonlocal seen
        if seen == calls:
            _die()
        seen += 1
        return function(*args, **kwargs)
    return wrapper


def arm(point: str) -> None:
    if point == "after_upload":
        openai.resources.files.Files.create = _then_die(openai.resources.files.Files.create)
    elif point == "after_create":
        openai.resources.batches.Batches.create = _then_die(openai.resources.batches.Batches.create)
    elif point == "mid_ingest":
        ingest.insert_answer = _die_after(ANSWERS_BEFORE_MID_INGEST_CRASH, ingest.insert_answer)
    else:
        raise SystemExit(f"unknown crash point {point!r}")


if __name__ == "__main__":
    arm(sys.argv[1])
    sys.argv = ["allpfit-etl", *sys.argv[2:]]
    entry_point()
