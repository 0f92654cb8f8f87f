"""PT-BR conversation scripts for the demo: what gym contacts, agents and bots really say."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

FIRST_NAMES = (
    "Juliana", "Carlos", "Fernanda", "Rafael", "Ana", "Bruno", "Camila", "Diego", "Larissa", "Thiago", "Beatriz",
    "Lucas", "Mariana", "Gabriel", "Patrícia", "João", "Letícia", "Pedro", "Aline", "Mateus", "Júlia", "Vinícius",
    "Débora", "Rodrigo", "Tatiane", "André", "Priscila", "Felipe", "Renata", "Igor",
)
LAST_NAMES = (
    "Souza", "Oliveira", "Santos", "Lima", "Pereira", "Costa", "Araújo", "Fernandes", "Carvalho", "Gomes", "Ribeiro",
    "Almeida", "Barbosa", "Rocha", "Dias", "Nascimento", "Medeiros", "Cavalcanti", "Freitas", "Monteiro",
)
AGENTS = ("Ana", "Carlos", "Rayane", "Kelly", "Marcos")
PLANS = ("R$ 89,90 no plano mensal", "R$ 79,90 no trimestral", "R$ 69,90 no plano anual", "R$ 119,90 no plano livre")
HOURS = ("18h", "19h", "7h", "6h30", "20h", "12h")
DAYS = ("amanhã", "segunda", "terça", "quarta", "quinta", "sexta", "sábado")
MODALITIES = ("musculação", "pilates", "crossfit", "funcional", "natação", "dança", "spinning")


@dataclass(frozen=True)
class Step:
    text: str | None
    message_type: int = 0
    sender_type: str | None = "Contact"
    private: bool = False
    attachment: int | None = None
    nul: bool = False  # "|NUL|" in the text becomes a NUL byte (or its JSON escape on PostgreSQL)
    attributes: dict = field(default_factory=dict)


def contact(text, **kw) -> Step:
    return Step(text, 0, "Contact", **kw)


def agent(text) -> Step:
    return Step(text, 1, "User")


def bot(text) -> Step:
    return Step(text, 1, "AgentBot")


def note(text) -> Step:
    return Step(text, 1, "User", private=True)


def activity(text) -> Step:
    return Step(text, 2, None)


def template(text) -> Step:
    return Step(text, 3, None)


def greeting(gym: str) -> list[Step]:
    return [bot(f"Olá! 👋 Sou a assistente virtual da {gym}. Como posso ajudar?\n1️⃣ Planos e valores\n"
                "2️⃣ Aula experimental\n3️⃣ Já sou aluno\n4️⃣ Falar com atendente")]


def _price_question(rng, gym, first_name) -> list[Step]:
    return greeting(gym) + [
        contact(rng.choice(("1", "Oi, boa tarde!", "Olá 😊"))),
        contact(rng.choice(("qual o valor da mensalidade?", "Quanto custa o plano mensal?", "vcs tem plano anual? qual o preço?",
                            "quais os planos de vocês?"))),
        activity(f"Conversa atribuída a {rng.choice(AGENTS)} por Sistema"),
        agent(f"Olá! Temos {rng.choice(PLANS)}, com acesso a {rng.choice(MODALITIES)} e musculação. 💪"),
        contact(rng.choice(("vou pensar, obrigada", "ok, obrigado!", "Tem taxa de matrícula?", "👍🏽"))),
    ]


def _trial_scheduled(rng, gym, first_name) -> list[Step]:
    day, hour = rng.choice(DAYS), rng.choice(HOURS)
    name = first_name or rng.choice(FIRST_NAMES)
    intro = rng.choice((f"meu nome é {name} {rng.choice(LAST_NAMES)}", f"aqui é a {name}", f"sou o {name}"))
    return greeting(gym) + [
        contact("2"),
        contact(f"Oi! {intro}, queria fazer uma aula experimental de {rng.choice(MODALITIES)} 🏋️‍♀️"),
        agent("Claro! Qual dia e horário fica melhor pra você?"),
        contact(f"pode ser {day} às {hour}?"),
        agent(f"Agendado! Te esperamos {day} às {hour}. Traga roupa confortável e uma garrafinha d'água. 😉"),
        contact("combinado, obrigada!"),
        activity(f"Conversa foi resolvida por {rng.choice(AGENTS)}"),
    ]


def _trial_asked(rng, gym, first_name) -> list[Step]:
    return [
        contact("boa noite, posso agendar uma visita pra conhecer a academia?"),
        bot("Nosso horário de atendimento é das 6h às 22h. Um consultor vai te responder em breve!"),
        contact(rng.choice(("ok", "tá bom", "aguardo"))),
    ]


def _schedule_hours(rng, gym, first_name) -> list[Step]:
    return [
        contact(rng.choice(("qual o horário de funcionamento no sábado?", "vocês abrem domingo?", "que horas abre amanhã?"))),
        agent("Sábado das 8h às 14h e domingo das 8h às 12h."),
        contact("e tem aula de spinning de manhã? quero me matricular"),
        agent("Tem sim, às 7h! Quer que eu reserve uma aula experimental?"),
    ]


def _member_billing(rng, gym, first_name) -> list[Step]:
    return [
        contact(rng.choice(("preciso da segunda via do boleto", "meu boleto venceu, como pago?", "quero trancar minha matrícula"))),
        note(rng.choice(("aluna com 2 mensalidades em atraso, não oferecer desconto", "cliente antigo, verificar contrato"))),
        agent("Claro! Te envio a segunda via por aqui mesmo."),
        Step(None, 1, "User", attachment=3),
        contact("recebi, obrigado"),
        template("Como você avalia nosso atendimento? ⭐⭐⭐⭐⭐"),
    ]


def _cancellation(rng, gym, first_name) -> list[Step]:
    return [
        contact("quero cancelar meu plano, estou me mudando"),
        agent("Que pena! Para cancelar é preciso assinar o termo na recepção."),
        contact("ok, passo lá amanhã"),
        activity("Conversa foi resolvida por Sistema"),
    ]


def _wrong_number(rng, gym, first_name) -> list[Step]:
    return [
        contact(rng.choice(("acho que é número errado", "quem é?", "Promoção imperdível de seguro auto! Clique no link"))),
        agent(f"Olá! Aqui é a {gym}, academia. Posso ajudar?"),
        contact("não tenho interesse, obrigado"),
    ]


def _bot_only(rng, gym, first_name) -> list[Step]:
    return greeting(gym) + [template("Ainda está aí? Se precisar, é só chamar! 😊")]


def _attachments(rng, gym, first_name) -> list[Step]:
    return [
        contact(None, attachment=0),
        contact("esse é o comprovante"),
        contact(None, attachment=1),
        agent("Recebido! Sua matrícula está confirmada. Bem-vinda! 🎉"),
        contact("quero saber o horário das aulas de pilates"),
    ]


def _long(rng, gym, first_name) -> list[Step]:
    steps = [contact("oi, tenho interesse nos planos, pode me explicar tudo?")]
    for i in range(105):
        steps.append(agent(f"Item {i + 1}: {rng.choice(PLANS)} e aulas de {rng.choice(MODALITIES)} às {rng.choice(HOURS)}"))
        steps.append(contact(rng.choice(("entendi", "e o valor com desconto?", "ok 👍", "e a matrícula?", "hmm"))))
    steps.append(agent("Posso agendar sua aula experimental para amanhã às 19h?"))
    steps.append(contact("pode sim, agendado então!"))
    return steps


def _nul_text(rng, gym, first_name) -> list[Step]:
    return [
        contact("Olá, queria saber|NUL| os valores dos planos", nul=True),
        agent(f"Olá! {rng.choice(PLANS)}."),
        contact("copiei do app: valor\\u0000 promocional ainda vale?"),
    ]


def _deleted(rng, gym, first_name) -> list[Step]:
    return [
        contact("mensagem enviada por engano", attributes={"deleted": True}),
        contact("qual o valor do plano trimestral?"),
        agent(f"{rng.choice(PLANS)}!"),
    ]


def _private_note(rng, gym, first_name) -> list[Step]:
    return [
        contact("oi, quero voltar a treinar, vocês tem promoção?"),
        note("ex-aluno, saiu por inadimplência em 2024"),
        activity(f"Conversa atribuída a {rng.choice(AGENTS)} por Sistema"),
        agent("Temos sim! Matrícula grátis este mês."),
    ]


SCRIPTS = {
    "price_question": _price_question,
    "trial_scheduled": _trial_scheduled,
    "trial_asked": _trial_asked,
    "schedule_hours": _schedule_hours,
    "member_billing": _member_billing,
    "cancellation": _cancellation,
    "wrong_number": _wrong_number,
    "bot_only": _bot_only,
    "attachments": _attachments,
    "long": _long,
    "email_nul": _nul_text,
    "nul_in_name": _price_question,
    "nameless_empty": _price_question,
    "nameless_null": _trial_asked,
    "deleted": _deleted,
    "private_note": _private_note,
}
CONVERSATION_KINDS = (
    ("price_question", 30), ("trial_scheduled", 15), ("trial_asked", 8), ("schedule_hours", 10), ("member_billing", 12),
    ("cancellation", 5), ("wrong_number", 6), ("bot_only", 8), ("attachments", 3), ("private_note", 3),
)
# The first conversations of every tenant: every edge case, whatever the random mix.
EDGE_CASE_KINDS = (
    "long", "long", "long", "email_nul", "nul_in_name", "attachments", "private_note", "nameless_empty",
    "nameless_null", "deleted", "bot_only", "trial_scheduled", "member_billing", "wrong_number",
)


def script(kind: str, rng: random.Random, gym: str, first_name: str | None = None) -> list[Step]:
    return SCRIPTS[kind](rng, gym, first_name)


_BULK_CONTACT = (
    "Oi, qual o valor da mensalidade? (pedido {cid})", "quero agendar uma aula experimental, protocolo {cid}",
    "vocês têm plano anual? sou cliente {cid}", "qual o horário de funcionamento? ref {cid}",
    "preciso da segunda via do boleto {cid}", "meu nome é {name}, tenho interesse ({cid})",
)
_BULK_AGENT = (
    "Olá! O plano mensal custa R$ 89,90.", "Claro! Pode ser amanhã às 18h?", "Agendado! Te esperamos amanhã às 18h.",
    "Funcionamos das 6h às 22h.", "Te envio a segunda via agora.",
)


def bulk_line(rng: random.Random, incoming: bool, conversation_id: int, index: int) -> str:
    """One synthetic message; the conversation id keeps every transcript distinct."""
    if incoming:
        return rng.choice(_BULK_CONTACT).format(cid=conversation_id, name=rng.choice(FIRST_NAMES))
    return rng.choice(_BULK_AGENT)
