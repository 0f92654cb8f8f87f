"""A big OpenAI chunk over forked worker processes: they take the conversations from one shared
queue, so a slower worker takes fewer and none finishes long before the others."""

from __future__ import annotations

import multiprocessing
import os
import time

from allpfit_etl.analysis.interface import AnalysisResult, ChunkOutcome, ConversationInput, LeadAnalysis
from allpfit_etl.analysis.worker_processes import WorkerProcessesAnalyzer

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
