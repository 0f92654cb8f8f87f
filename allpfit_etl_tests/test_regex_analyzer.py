"""The Portuguese regex analyser on real-looking transcripts, negatives included."""

from __future__ import annotations

import pytest

from allpfit_etl.analysis.interface import ConversationInput
from allpfit_etl.analysis.regex_analyzer import (
    PARALLEL_MIN_CONVERSATIONS,
    RegexAnalyzer,
    analyze_transcript,
    extract_name,
    plausible_person_name,
)


def transcript(*lines: tuple[str, str]) -> str:
    return "\n".join(f"[10/11 10:{i:02d}] {speaker}: {text}" for i, (speaker, text) in enumerate(lines))


C, A, B = "Contato", "Atendente", "Bot"

CASES = [
    # (transcript, contact_name, is_lead, visita_agendada, probability)
    (transcript((C, "Oi, qual o valor da mensalidade?"), (A, "O mensal custa R$ 89,90")), None, True, False, 2),
    (transcript((C, "quero fazer uma aula experimental de pilates 🏋️‍♀️"), (A, "Pode ser amanhã às 18h?"),
                (C, "pode sim"), (A, "Agendado! Te esperamos amanhã às 18h")), None, True, True, 5),
    (transcript((C, "boa noite, posso agendar uma visita?"), (B, "Atendemos das 6h às 22h, já te respondemos")),
     None, True, False, 4),
    (transcript((C, "qual o horário de funcionamento no sábado?"), (A, "8h às 14h")), None, True, False, 3),
    (transcript((C, "preciso da segunda via do boleto"), (A, "Segue o boleto"), (C, "obrigado")), None, False, False, 0),
    (transcript((C, "quero cancelar meu plano, estou me mudando")), None, False, False, 1),
    (transcript((C, "acho que é número errado"), (A, "Aqui é a AllpFit"), (C, "não tenho interesse")), None, False, False, 0),
    (transcript((C, "oi"), (A, "Temos plano anual com desconto, valor promocional de R$ 69,90!")), None, False, False, 0),
    (transcript((B, "Olá! 👋 Sou a assistente virtual"), (B, "Ainda está aí?")), None, False, False, 0),
    ("", None, False, False, 0),
    (transcript((C, "[imagem]"), (C, "[áudio]"), (C, "quanto custa o plano anual? 💪🏽")), None, True, False, 2),
]


@pytest.mark.parametrize("text, name, lead, visit, probability", CASES)
def test_lead_visit_and_probability(text, name, lead, visit, probability):
    analysis = analyze_transcript(text, name)
    assert (analysis.is_lead, analysis.visita_agendada, analysis.probabilidade_conversao) == (lead, visit, probability)
    assert analysis.analise_ia and "\n" not in analysis.analise_ia and len(analysis.analise_ia) <= 200


def test_analysis_text_names_the_situation():
    assert analyze_transcript(transcript((C, "segunda via do boleto"))).analise_ia.startswith("Não é lead: assunto de aluno")
    assert "agendada" in analyze_transcript(CASES[1][0]).analise_ia


@pytest.mark.parametrize(
    "line, expected",
    [
        ("meu nome é Júlia Araújo, quero saber os preços", "Júlia Araújo"),
        ("Oi! aqui é a Fernanda", "Fernanda"),
        ("sou o Carlos Eduardo da Silva e queria treinar", "Carlos Eduardo da Silva"),
        ("me chamo ANA PAULA", "Ana Paula"),
        ("pode me chamar de Bia 😊", "Bia"),
        ("sou a mãe do Pedro", None),
        ("aqui é da empresa de seguros", None),
        ("sou aluno aí", None),
        ("aqui é o carlos", None),
        ("quero saber o valor", None),
    ],
)
def test_name_extraction(line, expected):
    assert extract_name([line]) == expected


def test_name_falls_back_to_a_plausible_contact_name():
    assert analyze_transcript(transcript((C, "qual o valor?")), "Carlos Lima").nome_mapeado_bot == "Carlos Lima"
    assert analyze_transcript(transcript((C, "meu nome é Rita")), "Carlos").nome_mapeado_bot == "Rita"
    for bad in ("+55 84 99999-1111", "", None, "5584999991111", "🙂"):
        assert plausible_person_name(bad) is None


def test_agent_lines_never_make_a_name():
    text = transcript((C, "oi"), (A, "Olá, meu nome é Marcos, sou o consultor"))
    assert analyze_transcript(text).nome_mapeado_bot is None


def test_analyzer_returns_one_result_per_input_deterministically():
    inputs = [ConversationInput(1, i, f"hash{i}", text, name) for i, (text, name, *_rest) in enumerate(CASES)]
    first = RegexAnalyzer().analyze_chunk(inputs)
    second = RegexAnalyzer().analyze_chunk(inputs)
    assert [(r.conversation_id, r.content_hash) for r in first.results] == [(i, f"hash{i}") for i in range(len(CASES))]
    assert first.results == second.results and not first.failures
    assert first.usage.calls == 0 and first.usage.cost_usd == 0
    assert RegexAnalyzer.identity.analyzer == "regex" and RegexAnalyzer.identity.model == ""


def test_a_big_chunk_analysed_in_worker_processes_gives_the_serial_answers_in_order():
    size = PARALLEL_MIN_CONVERSATIONS + 7
    inputs = [
        ConversationInput(1, i, f"h{i}", CASES[i % len(CASES)][0], "Ana Souza" if i % 3 else None) for i in range(size)
    ]
    inputs[5] = ConversationInput(1, 5, "h5", None, None)  # type: ignore[arg-type]  # raises inside a worker
    outcome = RegexAnalyzer().analyze_chunk(inputs)
    assert [(f.conversation_id, f.error_kind) for f in outcome.failures] == [(5, "exception")]
    assert [r.conversation_id for r in outcome.results] == [c.conversation_id for c in inputs if c.conversation_id != 5]
    for result, conversation in zip(outcome.results, (c for c in inputs if c.conversation_id != 5)):
        assert result.content_hash == conversation.content_hash
        assert result.analysis == analyze_transcript(conversation.message_compiled, conversation.contact_name)
