"""The one way allpfit-etl starts worker processes: forked, so a worker starts in milliseconds
with everything already imported and inherits the work it is given (never pickled).

Three steps use it: a big extract day (``extract.chatwoot_source``), a big regex chunk
(``analysis.regex_analyzer``) and a big OpenAI chunk (``analysis.worker_processes``). Each forks
from the step's own thread before it starts any thread of its own: a fork copies only the calling
thread, so a lock another thread held at that moment would stay held in the child for ever."""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
from concurrent.futures import ProcessPoolExecutor


def can_fork() -> bool:
    """False on Windows (and macOS builds without fork): the callers then work in this process."""
    return "fork" in multiprocessing.get_all_start_methods()


def fork_context() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("fork")


def forked_pool(workers: int, initializer=None, initargs: tuple = ()) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(workers, mp_context=fork_context(), initializer=initializer, initargs=initargs)
