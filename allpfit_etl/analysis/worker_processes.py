"""A big OpenAI chunk spread over the machine's cores.

One event loop drives a few hundred requests per second before its own CPU (the HTTP client,
JSON, the commits) is the limit, while an account at OpenAI's higher tiers allows 10,000–30,000
requests per minute. So a chunk with enough conversations is split over forked worker
processes. Each worker builds its own analyzer: it holds its own lease on the account's shared
limit (together they stay within it, as several steps do), commits its own answers the moment
they arrive, and hands its outcome back. An account error in one worker closes the shared queue:
its siblings send nothing more (what they had in flight still lands and is stored); the run's
other steps learn it from the database (``openai_run_stops``) at their next beat.

The workers take the chunk's conversations a few at a time from one shared position
(``SharedFeed``), not a fixed share each: with fixed shares, whichever worker finishes first
leaves the other sending alone at its half of the limit until its next beat.

Forked, not spawned: a worker starts in milliseconds with everything already imported.
"""

from __future__ import annotations

import collections
import multiprocessing
import multiprocessing.connection
import time
from typing import Callable, Sequence

from allpfit_etl.forking import can_fork, fork_context
from allpfit_etl.analysis.interface import Analyzer, ChunkOutcome, ConversationInput
from allpfit_etl.analysis.openai_analyzer import OpenAIAccountError
from allpfit_etl.errors import redact
from allpfit_etl.settings import worker_process_limit

# Below this many conversations per worker, a worker costs more than it saves.
MIN_CONVERSATIONS_PER_WORKER = 1_000
# Conversations a worker takes from the shared position at once: a few tens of milliseconds of
# requests, so the workers finish within that of each other.
FEED_BATCH = 8


def worker_count(conversations: int, dialect: str) -> int:
    """How many processes analyze a chunk of ``conversations``: 1 keeps it in this process."""
    if dialect == "sqlite" or not can_fork():
        return 1  # SQLite has a single writer; Windows cannot fork
    return max(1, min(worker_process_limit(), conversations // MIN_CONVERSATIONS_PER_WORKER))


ProgressFn = Callable[[dict], None]


def share_of_limit(limit: int | None, workers: int) -> int | None:
    """Each worker's part of a tenant's ``max_concurrency`` (a bound for the whole chunk), so
    that together they stay within it; at least one request each."""
    return max(1, limit // workers) if limit else None


class SharedFeed:
    """The chunk's conversations as one queue for every worker process: each takes the next
    ``batch`` from a position in shared memory. Used by the analyzer as its queue (truth value:
    anything left; ``popleft``; ``close`` when it stops, and ``closed`` when a sibling did)."""

    def __init__(self, conversations: Sequence[ConversationInput], position, stopped, batch: int = FEED_BATCH):
        self.conversations, self.position, self.stopped, self.batch = conversations, position, stopped, batch
        self.taken: collections.deque[ConversationInput] = collections.deque()

    def __len__(self) -> int:
        return len(self.conversations)

    def __bool__(self) -> bool:
        return not self.closed and (bool(self.taken) or self._take())

    @property
    def closed(self) -> bool:
        return bool(self.stopped.value)

    def close(self) -> None:
        self.stopped.value = 1
        self.taken.clear()  # taken, not sent: they stay pending

    def popleft(self) -> ConversationInput:
        if not self:
            raise IndexError("no conversation left")
        return self.taken.popleft()

    def _take(self) -> bool:
        with self.position.get_lock():
            start = self.position.value
            end = min(start + self.batch, len(self.conversations))
            self.position.value = end
        self.taken.extend(self.conversations[start:end])
        return end > start


class WorkerProcessesAnalyzer:
    """The ``Analyzer`` contract over ``workers`` forked processes.

    ``build(progress)`` runs in each worker after the fork and returns that worker's analyzer
    (fresh database connections, its own answer writer and rate-limit lease); ``progress`` is
    called in this process with the workers' summed figures."""

    def __init__(self, build: Callable[[ProgressFn], Analyzer], workers: int, *,
                 progress: ProgressFn | None = None, progress_every_s: float = 5.0):
        self.build, self.workers = build, workers
        self.progress, self.progress_every_s = progress, progress_every_s

    def analyze_chunk(self, conversations: Sequence[ConversationInput]) -> ChunkOutcome:
        context = fork_context()
        done = context.Array("q", self.workers)  # conversations finished, per worker
        position = context.Value("q", 0)  # the next conversation to take (SharedFeed)
        stopped = context.Value("b", 0)  # set by the first worker that stops on an account error
        conversations = list(conversations)
        workers = []
        for index in range(self.workers):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(target=_work, args=(self.build, conversations, position, stopped, send, done, index),
                                      daemon=True, name=f"openai-worker-{index}")
            process.start()
            send.close()
            workers.append((process, receive))

        replies = self._wait(workers, done, len(conversations))
        outcome, stop, crash = ChunkOutcome(), None, None
        for kind, value in replies:
            if kind == "ok":
                outcome.results += value.results
                outcome.failures += value.failures
                outcome.usage = outcome.usage.add(value.usage)
            elif kind == "stopped":
                stop = stop or value
            else:
                crash = crash or value
        if stop:  # answers the workers stored stay stored; the rest stay pending
            raise OpenAIAccountError(stop)
        if crash:
            raise RuntimeError(f"an analysis worker process failed: {crash}")
        return outcome

    def _wait(self, workers, done, total: int) -> list[tuple[str, object]]:
        replies: dict[int, tuple[str, object]] = {}
        started = last_report = time.monotonic()
        while len(replies) < len(workers):
            waiting = {receive: index for index, (_, receive) in enumerate(workers) if index not in replies}
            for receive in multiprocessing.connection.wait(list(waiting), timeout=1.0):
                index = waiting[receive]
                try:
                    replies[index] = receive.recv()
                except EOFError:  # killed (out of memory, a signal) before it could answer
                    workers[index][0].join(5)
                    replies[index] = ("crash", f"worker {index} exited with code {workers[index][0].exitcode}")
            if self.progress and time.monotonic() - last_report >= self.progress_every_s:
                last_report = time.monotonic()
                finished = sum(done[:])
                rate = finished / (last_report - started)
                self.progress({"done": finished, "total": total, "per_second": rate,
                               "eta_s": (total - finished) / rate if rate else float("inf")})
        for process, receive in workers:
            process.join(10)
            receive.close()
        return [replies[i] for i in range(len(workers))]


def _work(build: Callable[[ProgressFn], Analyzer], conversations: list[ConversationInput], position, stopped, send,
          done, index: int) -> None:
    """In the forked worker: analyze what it takes of ``conversations`` and send back ("ok",
    outcome), ("stopped", line) after an account error, or ("crash", line)."""

    def progress(p: dict) -> None:
        done[index] = p["done"]

    try:
        outcome = build(progress).analyze_chunk(SharedFeed(conversations, position, stopped))
        done[index] = len(outcome.results) + len(outcome.failures)
        send.send(("ok", outcome))
    except OpenAIAccountError as stop:
        send.send(("stopped", str(stop)))
    except BaseException as exc:  # noqa: BLE001 — the parent decides; this process only reports
        send.send(("crash", redact(f"{type(exc).__name__}: {exc}".splitlines()[0])[:500]))
    finally:
        send.close()
