"""Portuguese heuristics for a gym's leads: the free analyser, and the fallback to OpenAI.

A lead is a *contact* showing interest: agents and bots talk about prices all day, so interest
signals are read from the contact's lines only. Visits count when somebody confirms a concrete
appointment. Patterns match accent-free, lower-cased text; names are taken from the original.
"""

import re
import unicodedata
from typing import Sequence

from allpfit_etl.forking import can_fork, forked_pool
from allpfit_etl.analysis.interface import (
    AnalysisFailure,
    AnalysisResult,
    ChunkOutcome,
    ConversationInput,
    LeadAnalysis,
)
from allpfit_etl.identities import regex_identity
from allpfit_etl.settings import worker_process_limit


_LINE = re.compile(r"^\[[^\]]*\]\s*(Contato|Atendente|Bot):\s?(.*)$")


def _accent_table() -> dict[int, str]:
    table = {}
    for code in range(0xC0, 0x250):
        base = unicodedata.normalize("NFKD", chr(code))[0]
        if base != chr(code) and base.isascii():
            table[code] = base
    return table


_ACCENTS = _accent_table()


def _fold(text: str) -> str:
    """Lower-case and strip accents, one character for one: 'Matrícula' → 'matricula'."""
    return text.lower().translate(_ACCENTS)


_INTEREST = {
    "preço": r"\b(preco|precos|valor(es)?|quanto (custa|fica|e|sai)|mensalidade|taxa)\b",
    "planos": r"\b(plano|planos|anual|trimestral|semestral|promocao|promocoes|desconto)\b",
    "matrícula": r"\b(matricula|matricular|me inscrever|inscricao|quero (entrar|comecar|treinar)|voltar a treinar)\b",
    "horários": r"\b(horario|horarios|que horas|abre|abrem|funcionamento)\b",
    "aula experimental": r"\b(aula (experimental|teste|gratis)|experimentar|conhecer a academia|visita|visitar)\b",
    "modalidades": r"\b(musculacao|pilates|crossfit|funcional|natacao|danca|spinning|personal|modalidades?)\b",
    "interesse": r"\b(tenho interesse|gostaria de saber|quero saber|me interess)",
}
_INTEREST_RE = {label: re.compile(pattern) for label, pattern in _INTEREST.items()}

_MEMBER_RE = re.compile(
    r"\b(segunda via|boleto|cancelar|cancelamento|trancar|reclama\w*|estorno|reembolso|ja sou alun[oa]|sou alun[oa])\b"
)
_REJECTION_RE = re.compile(
    r"\b(numero errado|engano|nao tenho interesse|sem interesse|nao quero|pare de|spam|clique no link|seguro auto)\b"
)
_VISIT_ASK_RE = re.compile(r"\b(agendar|marcar|posso (ir|passar)|visita|aula experimental)\b")
_VISIT_CONFIRMED_RE = re.compile(
    r"\b(agendad[oa]|agendei|marcad[oa]|marquei|confirmad[oa]|te esperamos|esperamos voce|reservad[oa]|combinado"
    r"|pode sim)\b"
)
_CONCRETE_TIME_RE = re.compile(
    r"\b(amanha|hoje|segunda|terca|quarta|quinta|sexta|sabado|domingo|dia \d{1,2})\b.{0,20}?\b(as|a partir das)\s*\d{1,2}"
    r"|\b\d{1,2}\s*(h|:\d{2})\b"
)

_NAME_INTRO_RE = re.compile(
    r"(?:\bmeu nome (?:e|eh)|\bme chamo|\baqui (?:e|eh) (?:[oa] )?|\bsou (?:[oa] )|\bpode me chamar de|\bnome:)\s*",
)
_NAME_STOPWORDS = {
    "mae", "pai", "filho", "filha", "aluno", "aluna", "cliente", "eu", "da", "do", "de", "empresa", "responsavel",
    "interessado", "interessada", "nova", "novo", "dona", "dono", "esposa", "marido", "professor", "professora",
}
_CONNECTORS = {"da", "de", "do", "das", "dos", "e"}
_WORD = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ]+")


def _contact_lines(transcript: str) -> tuple[list[str], list[str]]:
    contact, others = [], []
    for line in transcript.splitlines():
        match = _LINE.match(line)
        if not match:
            continue
        (contact if match.group(1) == "Contato" else others).append(match.group(2))
    return contact, others


def extract_name(contact_lines: list[str], folded_lines: list[str] | None = None) -> str | None:
    """The name the contact states ("meu nome é…", "aqui é a…", "sou o…"), title-cased."""
    folded_lines = folded_lines if folded_lines is not None else [_fold(line) for line in contact_lines]
    for line, folded in zip(contact_lines, folded_lines):
        if len(folded) != len(line):  # folding changed offsets (rare ligatures): skip rather than misalign
            continue
        for match in _NAME_INTRO_RE.finditer(folded):
            words = []
            for word in _WORD.finditer(line[match.end():]):
                token = word.group(0)
                folded_token = _fold(token)
                if folded_token in _CONNECTORS and words:
                    words.append(folded_token)
                    continue
                if folded_token in _NAME_STOPWORDS or not token[0].isupper():
                    break
                words.append(token)
                if len([w for w in words if w not in _CONNECTORS]) == 3:
                    break
                gap = line[match.end() + word.end(): match.end() + word.end() + 1]
                if gap and gap not in " ":
                    break
            while words and words[-1] in _CONNECTORS:
                words.pop()
            if words:
                return " ".join(w if w in _CONNECTORS else w[0].upper() + w[1:].lower() for w in words)
    return None


def plausible_person_name(name: str | None) -> str | None:
    """A display name that looks like a person's: letters, a capitalised word, no digits."""
    if not name or not name.strip() or any(ch.isdigit() for ch in name):
        return None
    words = _WORD.findall(name)
    if not words or not any(w[0].isupper() for w in words) or len(words) > 5:
        return None
    return " ".join(words)


def analyze_transcript(transcript: str, contact_name: str | None = None) -> LeadAnalysis:
    """Lead analysis of one transcript, deterministic and free."""
    contact, others = _contact_lines(transcript)
    folded_contact = [_fold(line) for line in contact]
    contact_text = "\n".join(folded_contact)
    all_text = contact_text + "\n" + _fold("\n".join(others))

    interests = [label for label, pattern in _INTEREST_RE.items() if pattern.search(contact_text)]
    member = bool(_MEMBER_RE.search(contact_text))
    rejected = bool(_REJECTION_RE.search(contact_text))
    asked_visit = bool(_VISIT_ASK_RE.search(contact_text))
    confirmed_visit = bool(_VISIT_CONFIRMED_RE.search(all_text)) and bool(_CONCRETE_TIME_RE.search(all_text)) and (
        asked_visit or "aula experimental" in interests or bool(_VISIT_ASK_RE.search(all_text))
    ) and bool(contact)

    if rejected and not confirmed_visit:
        probability = 0
    elif confirmed_visit:
        probability = 5
    elif asked_visit or "matrícula" in interests:
        probability = 4
    elif len(_topics(interests)) >= 2 or "horários" in interests:
        probability = 3
    elif {"preço", "planos"} & set(interests):
        probability = 2
    elif interests:
        probability = 1
    else:
        probability = 0
    if member and not confirmed_visit:
        probability = min(probability, 1)

    is_lead = probability >= 2 and not rejected and not (member and not confirmed_visit)
    name = extract_name(contact, folded_contact) or plausible_person_name(contact_name)
    return LeadAnalysis(
        is_lead=is_lead,
        visita_agendada=confirmed_visit,
        probabilidade_conversao=probability,
        nome_mapeado_bot=name,
        analise_ia=_summary(is_lead, confirmed_visit, asked_visit, interests, member, rejected, bool(contact)),
    )


def _topics(interests: list[str]) -> set[str]:
    """Price and plan questions are one topic: asking "quanto custa o plano?" is one signal."""
    return {"preço" if label == "planos" else label for label in interests}


def _summary(is_lead, confirmed, asked, interests, member, rejected, has_contact) -> str:
    if not has_contact:
        return "Não é lead: o contato não escreveu nada."
    if rejected and not confirmed:
        return "Não é lead: contato sem interesse ou número errado."
    if member and not confirmed:
        return "Não é lead: assunto de aluno (boleto, cancelamento ou reclamação)."
    signals = ", ".join(interests) if interests else "nenhum sinal de interesse"
    if confirmed:
        return f"Lead: visita ou aula experimental agendada; sinais: {signals}."[:200]
    if asked:
        return f"Lead: pediu para agendar visita, sem confirmação; sinais: {signals}."[:200]
    if is_lead:
        return f"Lead: {signals}."[:200]
    return f"Interesse fraco: {signals}."[:200] if interests else "Não é lead: nenhum sinal de interesse."


# In-process runs execute chunks one after another and the regexes are pure CPU, so a chunk this
# big is spread over the machine's cores (forked workers: nothing to re-import); smaller ones
# would spend more on the workers than they save.
PARALLEL_MIN_CONVERSATIONS = 5_000


def _analyze_each(items: list[tuple[str, str | None]]) -> list[LeadAnalysis | str]:
    """Analysis of each (transcript, contact name), or the repr of the exception it raised."""
    out: list[LeadAnalysis | str] = []
    for transcript, contact_name in items:
        try:
            out.append(analyze_transcript(transcript, contact_name))
        except Exception as exc:  # one bad transcript must not sink the chunk
            out.append(repr(exc)[:300])
    return out


def _analyze_all(items: list[tuple[str, str | None]]) -> list[LeadAnalysis | str]:
    workers = worker_process_limit()
    if len(items) < PARALLEL_MIN_CONVERSATIONS or workers < 2 or not can_fork():
        return _analyze_each(items)
    size = -(-len(items) // (workers * 4))  # a few parts per worker evens out their speeds
    parts = [items[i:i + size] for i in range(0, len(items), size)]
    with forked_pool(workers) as pool:
        return [answer for part in pool.map(_analyze_each, parts) for answer in part]


class RegexAnalyzer:
    """The ``Analyzer`` over ``analyze_transcript``: no network, no cost."""

    identity = regex_identity()

    def analyze_chunk(self, conversations: Sequence[ConversationInput]) -> ChunkOutcome:
        outcome = ChunkOutcome()
        answers = _analyze_all([(c.message_compiled, c.contact_name) for c in conversations])
        for conversation, answer in zip(conversations, answers):
            if isinstance(answer, str):
                outcome.failures.append(
                    AnalysisFailure(conversation.conversation_id, conversation.content_hash, "exception", 1, answer)
                )
            else:
                outcome.results.append(AnalysisResult(conversation.conversation_id, conversation.content_hash, answer))
        return outcome
