"""A big OpenAI chunk over forked worker processes: they take the conversations from one shared
queue, so a slower worker takes fewer and none finishes long before the others; the first to
stop closes it for all; a tenant's ``max_concurrency`` bounds them together."""

from __future__ import annotations

import multiprocessing
import os
import time

import pytest

from allpfit_etl.analysis.interface import AnalysisResult, ChunkOutcome, ConversationInput, LeadAnalysis
from allpfit_etl.analysis.worker_processes import FEED_BATCH, SharedFeed, WorkerProcessesAnalyzer, share_of_limit

ANSWER = LeadAnalysis(is_lead=True, visita_agendada=False, probabilidade_conversao=3, nome_mapeado_bot=None,
                      analise_ia="ok")


class PacedAnalyzer:
    """Takes conversations from its queue one at a time, ``seconds`` each; notes which process it ran in."""

    def __init__(self, seconds: float):
        self.seconds = seconds

    def analyze_chunk(self, queue) -> ChunkOutcome:
        outcome = ChunkOutcome()
        while queue:
            conversation = queue.popleft()
            time.sleep(self.seconds)  # the work itself (an answer taking this long), not synchronisation
            outcome.results.append(AnalysisResult(conversation.conversation_id, f"{os.getpid()}", ANSWER))
        return outcome


def test_workers_share_one_queue_so_the_slower_takes_fewer_and_nothing_is_done_twice():
    conversations = [ConversationInput(1, i, f"h{i}", "texto") for i in range(300)]
    parent = os.getpid()
    started = multiprocessing.get_context("fork").Value("i", 0)  # shared by the forked workers

    def build(progress):
        assert os.getpid() != parent  # each worker is its own forked process
        with started.get_lock():
            slow = started.value == 0  # the first to start is the slow one
            started.value += 1
        return PacedAnalyzer(0.02 if slow else 0.0005)

    outcome = WorkerProcessesAnalyzer(build, 2).analyze_chunk(conversations)
    ids = [r.conversation_id for r in outcome.results]
    assert sorted(ids) == list(range(300))  # every conversation once
    per_process: dict[str, int] = {}
    for result in outcome.results:
        per_process[result.content_hash] = per_process.get(result.content_hash, 0) + 1
    assert len(per_process) == 2
    # A fixed split would give each 150; from one queue the fast worker takes most of them.
    assert max(per_process.values()) > 220, per_process


def test_a_closed_feed_gives_nothing_more_to_any_worker():
    context = multiprocessing.get_context("fork")
    conversations = [ConversationInput(1, i, f"h{i}", "texto") for i in range(100)]
    position, stopped = context.Value("q", 0), context.Value("b", 0)
    first, sibling = SharedFeed(conversations, position, stopped), SharedFeed(conversations, position, stopped)
    first.popleft(), sibling.popleft()  # each holds a batch it has taken
    first.close()  # the first worker met an account error
    assert sibling.closed and not sibling and not first
    with pytest.raises(IndexError):
        sibling.popleft()
    assert position.value == 2 * FEED_BATCH  # nothing beyond what was taken before


def test_a_tenants_max_concurrency_bounds_the_whole_chunk_over_its_workers():
    assert share_of_limit(None, 2) is None  # auto stays auto
    assert [share_of_limit(limit, 2) for limit in (1, 5, 32)] == [1, 2, 16]
    assert share_of_limit(32, 4) * 4 <= 32
