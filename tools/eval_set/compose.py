"""Compose the bundled evaluation set from hand-written fragments (not part of the package).

Every scene below is a hand-written WhatsApp exchange of a Brazilian gym, with slots for the
variable parts (names, days, prices, a typo or an emoji). Each scene states its own labels —
decided when the scene was written, by the labelling rules of ``allpfit_etl/evaluation/data/README.md``
— and the one-line note that justifies them. The composer only picks slot values and
timestamps with a fixed seed, so the set is reproducible:

    python tools/eval_set/compose.py        # rewrites allpfit_etl/evaluation/data/*.jsonl

Scenes are split by *scene*, not by conversation: the held-out file holds scenes never
seen in the development file, so tuning on dev cannot memorise held-out wording.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import unicodedata
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "allpfit_etl" / "evaluation" / "data"
SEED = 21
TZ = dt.timezone(dt.timedelta(hours=-3))

FIRST = ["Juliana", "Carlos", "Fernanda", "Rafael", "Ana Paula", "Bruno", "Camila", "Diego", "Larissa", "Thiago",
         "Beatriz", "Lucas", "Mariana", "Gabriel", "Patrícia", "João Pedro", "Letícia", "Aline", "Mateus", "Vinícius",
         "Débora", "Rodrigo", "Tatiane", "André", "Priscila", "Felipe", "Renata", "Igor", "Sueli", "Edson", "Kauã",
         "Maria Eduarda", "Francisco", "Rosângela", "Wesley", "Jéssica", "Cláudio", "Bianca", "Everton", "Luana"]
LAST = ["Souza", "Oliveira", "Santos", "Lima", "Pereira", "Costa", "Araújo", "Fernandes", "Carvalho", "Gomes",
        "Ribeiro", "Almeida", "Barbosa", "Rocha", "Dias", "Nascimento", "Medeiros", "Freitas", "Monteiro", "Teixeira"]
NOT_PERSON = ["+55 11 98765-4321", "+55 21 99812-3344", "💪🏽", ".", "Fitness Life", "~", "+55 31 98400-1122",
              "Amo minha família 🙏", "Deus é fiel", "+55 85 99654-0098", "Loja da Bia Cosméticos", "🌻"]
AGENTS = ["Kelly", "Rayane", "Marcos", "Jéssica", "Tiago", "Duda"]
GYMS = ["Allp Fit", "Allp Fit Centro", "Allp Fit Jardins", "Allp Fit Vila Nova"]
DAYS = ["amanhã", "segunda", "terça", "quarta", "quinta", "sexta", "sábado", "segunda-feira", "quinta-feira"]
HOURS = ["7h", "18h", "19h", "6h30", "20h", "12h", "17h30", "9h", "19:00", "18:30"]
MODALITIES = ["musculação", "pilates", "funcional", "spinning", "muay thai", "dança", "cross", "natação"]
PRICES = ["R$ 99,90", "R$ 89,90", "R$ 109,90", "R$ 119,90", "R$ 79,90"]

BOT_MENU = ("Olá! 👋 Bem-vindo(a) à {gym}! Sou a assistente virtual. Digite: 1️⃣ Planos e valores 2️⃣ Horários "
            "3️⃣ Aula experimental 4️⃣ Financeiro 5️⃣ Falar com atendente")
BOT_TABLE = ("📋 Nossos planos: • Mensal {p1} • Trimestral R$ 269,70 (R$ 89,90/mês) • Semestral R$ 479,40 "
             "• Anual R$ 838,80 (R$ 69,90/mês) ✅ Sem taxa de matrícula este mês! Acesso livre à musculação e às aulas "
             "coletivas. Funcionamos de seg a sex das 5h30 às 23h, sábado das 8h às 14h.")
BOT_HOURS = "🕐 Horários: segunda a sexta 5h30–23h | sábado 8h–14h | domingo e feriados 8h–12h."


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


def whatsappify(rng: random.Random, text: str) -> str:
    """How people type on WhatsApp: no accents, abbreviations, lower case, a typo, an emoji."""
    if rng.random() < 0.35:
        text = fold(text)
    for word, short in (("você", "vc"), ("voce", "vc"), ("que ", "q "), ("para ", "pra "), ("também", "tb"),
                        ("tudo bem", "td bem"), ("beleza", "blz"), ("obrigad", "obg"), ("por favor", "pfv"),
                        ("porque", "pq"), ("não", "n"), ("hoje", "hj"), ("quanto", "qnto"), ("mensalidade", "mensalidadi")):
        if word in text and rng.random() < 0.35:
            text = text.replace(word, short, 1)
    if rng.random() < 0.4:
        text = text[0].lower() + text[1:] if text else text
    if rng.random() < 0.12 and len(text) > 12:
        i = rng.randrange(3, len(text) - 3)
        if text[i].isalpha() and text[i + 1].isalpha():
            text = text[:i] + text[i + 1] + text[i] + text[i + 2:]  # swapped letters
    if rng.random() < 0.15:
        text = text.rstrip("?.!") + rng.choice([" 😅", " 🙏", " 😊", " kkk", " 💪", " 🤔", "??", " rs"])
    return text


class Scene:
    """One hand-written exchange: ``script(v)`` gives turns; labels and note are the scene's."""

    def __init__(self, key, turns, *, is_lead, visita, prob, nome, note, split):
        self.key, self.turns, self.split = key, turns, split
        self.is_lead, self.visita, self.prob, self.nome, self.note = is_lead, visita, prob, nome, note


SCENES: list[Scene] = []


def scene(key, *, is_lead, visita, prob, nome="display", note, split="dev"):
    """``nome``: "display" (the display name when it is a person's, else null), "stated" (the
    name the contact gives, slot ``{me}``), or None."""

    def register(fn):
        SCENES.append(Scene(key, fn, is_lead=is_lead, visita=visita, prob=prob, nome=nome, note=note, split=split))
        return fn

    return register


C, A, B = "contact", "agent", "bot"

# --------------------------------------------------------------------------------------------
# Prospects asking prices, hours, modalities (leads, no visit)
# --------------------------------------------------------------------------------------------


@scene("price_direct", is_lead=True, visita=False, prob=2, note="Perguntou o valor da mensalidade e não seguiu; lead frio.")
def _(v):
    return [(C, v.pick(["Boa tarde, qual o valor da mensalidade?", "Oi quanto ta a academia?", "Qual o preço do plano mensal?",
                        "Olá, quanto custa pra treinar aí?"])),
            (A, f"Oi! Tudo bem? Aqui é a {v.agent} da {v.gym} 😊 O mensal está {v.price} e no anual sai R$ 69,90/mês."),
            (C, v.pick(["Ok obrigado", "Blz, vou ver", "Entendi, obrigada", "👍"]))]


@scene("price_menu_bot", is_lead=True, visita=False, prob=2, note="Escolheu 'planos' no menu do bot e recebeu a tabela; nada mais.")
def _(v):
    return [(C, v.pick(["Oi", "Boa noite", "Olá!", "oii"])), (B, BOT_MENU.format(gym=v.gym)), (C, "1"),
            (B, BOT_TABLE.format(p1=v.price)), (C, v.pick(["Tem plano pra casal?", "Tem desconto pra estudante?",
                                                            "Esse valor tem fidelidade?"])),
            (A, "Temos sim! Posso te passar os detalhes por aqui mesmo 😊")]


@scene("price_and_hours", is_lead=True, visita=False, prob=3,
       note="Perguntou preço e horário de funcionamento: vários sinais de interesse, sem visita.")
def _(v):
    return [(C, v.pick(["Oi! Vcs abrem que horas de manhã? E qual o valor?", "Boa tarde. Qual horário de funcionamento e valores?",
                        "Olá, até que horas vocês funcionam? Quanto é a mensalidade?"])),
            (A, f"Olá! Abrimos 5h30 e fechamos 23h de segunda a sexta. Mensal {v.price}, anual R$ 69,90/mês."),
            (C, v.pick(["E sábado?", "E domingo abre?", "Perfeito. Tem estacionamento?"])),
            (A, "Sábado das 8h às 14h e domingo das 8h às 12h. Temos estacionamento conveniado 🚗"),
            (C, "Show, obrigado")]


@scene("modality_pilates", is_lead=True, visita=False, prob=3,
       note="Quer pilates, perguntou dias, horários e valor; interesse claro sem visita marcada.")
def _(v):
    mod = v.pick(["pilates", "muay thai", "natação", "dança"])
    return [(C, f"Vocês tem aula de {mod}?"), (A, f"Temos sim! {mod.capitalize()} terça e quinta às 19h e sábado às 9h."),
            (C, "Quanto é só essa modalidade?"), (A, f"Avulsa é R$ 140,00 por mês, ou {v.price} no plano completo com musculação."),
            (C, v.pick(["Vou falar com meu marido e te aviso", "Vou me organizar e retorno", "Hmm ok, vou ver direitinho"]))]


@scene("ad_click_info", is_lead=True, visita=False, prob=2,
       note="Veio do anúncio pedindo informações e respondeu ao menu; interesse inicial.")
def _(v):
    return [(C, v.pick(["Olá! Vi o anúncio no Instagram e gostaria de mais informações.",
                        "Oi, vim pelo Facebook. Quero saber mais sobre a academia",
                        "Olá! Tenho interesse e queria mais informações"])),
            (B, BOT_MENU.format(gym=v.gym)), (C, v.pick(["1", "Planos", "valores"])), (B, BOT_TABLE.format(p1=v.price))]


@scene("price_too_expensive", is_lead=True, visita=False, prob=1,
       note="Perguntou preço mas achou caro e desistiu; lead com chance mínima.")
def _(v):
    return [(C, "Qual o valor do plano mensal?"), (A, f"Oi! Mensal {v.price}, e no anual fica R$ 69,90/mês 😊"),
            (C, v.pick(["Nossa, ta caro. A outra aqui perto é 59", "Ah não, achei salgado demais, obrigada",
                        "Puts, fora do meu orçamento agora"])),
            (A, "Entendo! Se mudar de ideia estamos aqui. Temos promoção no anual esse mês."),
            (C, v.pick(["Ok", "Valeu", "Não obrigado"]))]


@scene("gympass", is_lead=True, visita=False, prob=2,
       note="Usuário de Gympass/TotalPass perguntando se é aceito: possível frequentador, sem visita marcada.")
def _(v):
    app = v.pick(["Gympass", "Wellhub", "TotalPass"])
    return [(C, f"Vcs aceitam {app}? Qual plano?"), (A, f"Aceitamos {app} a partir do plano Silver! É só fazer check-in no app."),
            (C, v.pick(["Blz", "Perfeito, obrigada", "Massa"]))]


@scene("return_ex_member", is_lead=True, visita=False, prob=4,
       note="Ex-aluno quer voltar a treinar e pede condições de rematrícula: intenção clara de matrícula.")
def _(v):
    return [(C, v.pick(["Oi, já treinei aí ano passado, quero voltar. Como faço?", "Boa tarde! Fui aluna de vcs e quero voltar a treinar",
                        "E aí, quero voltar pra academia, tem promoção pra ex aluno?"])),
            (A, "Que bom! Pra ex-alunos a matrícula é isenta. Mensal " + v.price + "."),
            (C, v.pick(["Fechou, vou passar aí pra acertar essa semana", "Ótimo, quero o plano anual então. Como pago?",
                        "Show, me manda o link do plano mensal"])),
            (A, "Perfeito! Qualquer dúvida me chama.")]


@scene("personal_trainer_interest", is_lead=True, visita=False, prob=3,
       note="Procura personal e pergunta valores e horários: interessado, nada marcado.")
def _(v):
    return [(C, "Boa noite, vcs tem personal trainer? Quanto fica?"),
            (A, "Boa noite! Temos sim, o personal é à parte: R$ 60 a sessão ou pacotes a partir de R$ 400/mês."),
            (C, "Tem horário de manhã cedo? Tipo 6h"), (A, "Temos! O professor Diego atende das 6h às 10h."),
            (C, "Vou pensar e te falo")]


@scene("audio_price", is_lead=True, visita=False, prob=2,
       note="Mandou áudio; a resposta da atendente mostra que perguntou de planos. Sem visita.", split="heldout")
def _(v):
    return [(C, "[áudio]"), (A, "Oi! Ouvi seu áudio 😊 Sobre os planos: mensal " + v.price + ", trimestral R$ 89,90/mês e anual R$ 69,90/mês."),
            (C, "[áudio]"), (A, "Isso, todos incluem as aulas coletivas! Qualquer coisa me chama.")]


@scene("audio_unclear", is_lead=False, visita=False, prob=1,
       note="Só áudios e uma foto sem contexto; não dá para dizer que há interesse.", split="heldout")
def _(v):
    return [(C, "[áudio]"), (A, "Oi! Não consigo ouvir áudio agora, pode escrever por favor?"), (C, "[imagem]"),
            (A, "Recebi a imagem, mas não entendi. Como posso ajudar?")]


@scene("student_discount", is_lead=True, visita=False, prob=3,
       note="Universitária pergunta desconto de estudante e horários; interessada, nada marcado.", split="heldout")
def _(v):
    return [(C, "Oii, tem desconto pra universitário?? sou da facul aqui do lado"),
            (A, "Temos sim! 15% de desconto no plano semestral com carteirinha."),
            (C, "E qual horário mais vazio? Só consigo ir depois das 21h"),
            (A, "Depois das 21h é bem tranquilo! Fechamos às 23h."), (C, "Aaah perfeito, vou ver com a minha amiga")]


@scene("hours_only", is_lead=True, visita=False, prob=2,
       note="Perguntou apenas o horário de funcionamento antes de começar; interesse inicial.", split="heldout")
def _(v):
    return [(C, v.pick(["Que horas abre amanhã?", "Vcs abrem feriado?", "Até que horas funciona sábado?"])),
            (B, BOT_HOURS), (C, "Ok, e pra começar precisa de exame médico?"),
            (A, "Não precisa! Só um documento com foto na matrícula.")]


# --------------------------------------------------------------------------------------------
# Visits: confirmed, vague, rescheduled, cancelled
# --------------------------------------------------------------------------------------------


@scene("trial_confirmed", is_lead=True, visita=True, prob=5,
       note="Aula experimental marcada com dia e hora e confirmada pelo contato.")
def _(v):
    return [(C, v.pick(["Oi, posso fazer uma aula experimental?", "Vcs tem aula teste gratis?", "Queria conhecer a academia, dá pra fazer um treino teste?"])),
            (A, f"Claro! A aula experimental é gratuita. Pode vir {v.day} às {v.hour}?"),
            (C, v.pick(["Posso sim! Fechado", "Pode ser, confirmado", "Combinado, estarei aí", "Sim! 💪"])),
            (A, f"Perfeito, agendado! Te esperamos {v.day} às {v.hour}. Traga roupa leve e garrafinha 😉")]


@scene("visit_contact_proposes", is_lead=True, visita=True, prob=5,
       note="Contato propõe dia e horário para conhecer; atendente confirma.")
def _(v):
    return [(C, f"Quero conhecer a academia, posso passar {v.day} às {v.hour}?"),
            (A, f"Pode sim! Vou deixar anotado, {v.day} às {v.hour} com a {v.agent} na recepção."),
            (C, "Obrigado!")]


@scene("visit_vague", is_lead=True, visita=False, prob=3,
       note="Diz que vai passar 'qualquer dia' sem data nem hora: visita não agendada.")
def _(v):
    return [(C, "Quanto tá o plano?"), (A, f"Mensal {v.price}! Quer vir conhecer? A aula experimental é grátis."),
            (C, v.pick(["Quero sim, qualquer dia desses passo aí", "Semana que vem eu apareço", "Vou ver um dia que der e passo aí",
                        "Depois eu passo ai pra ver"])),
            (A, "Combinado! Quando quiser é só chegar 😊")]


@scene("visit_no_time", is_lead=True, visita=False, prob=4,
       note="Combinando visita, atendente oferece horário e o contato não confirma.")
def _(v):
    return [(C, "Gostaria de agendar uma aula experimental"), (A, f"Claro! Tenho {v.day} às {v.hour} ou às 20h, qual prefere?"),
            (C, v.pick(["Vou ver meu horário do trabalho e te falo", "Deixa eu ver com meu chefe", "Te respondo mais tarde"]))]


@scene("visit_rescheduled", is_lead=True, visita=True, prob=5,
       note="Visita marcada, remarcada pelo contato para outro dia e hora e reconfirmada.")
def _(v):
    return [(C, "Oi, quero fazer a aula experimental"), (A, f"Ótimo! {v.day.capitalize()} às {v.hour} pode ser?"), (C, "Pode sim"),
            (A, "Agendado ✅"), (C, v.pick(["Oi, surgiu um imprevisto, consigo ir sábado às 9h?", "Poxa não vou conseguir, pode ser sábado 9h?"])),
            (A, "Sem problemas, remarcado para sábado às 9h! Te esperamos."), (C, "Obrigada, até lá")]


@scene("visit_cancelled", is_lead=True, visita=False, prob=3,
       note="Aula experimental marcada e depois cancelada sem nova data: não está agendada.")
def _(v):
    return [(C, "Quero marcar uma aula experimental"), (A, f"Claro! {v.day.capitalize()} às {v.hour}?"), (C, "Fechado"),
            (A, "Agendado! Te espero."),
            (C, v.pick(["Oi, não vou mais conseguir ir, depois te chamo", "Vou ter que desmarcar, tô doente 🤧 depois vejo outro dia",
                        "Cancela pra mim por favor, surgiu um problema"])),
            (A, "Tudo bem, melhoras! Quando quiser remarcar é só chamar.")]


@scene("visit_rescheduled_open", is_lead=True, visita=False, prob=4,
       note="Pediu para remarcar a visita mas nenhuma nova data foi fechada.", split="heldout")
def _(v):
    return [(C, "Oi, confirmei a aula de amanhã mas não vou poder"), (A, "Sem problema! Qual dia fica melhor?"),
            (C, v.pick(["Não sei ainda, vou ver minha escala", "Semana que vem te falo", "Deixa eu ver e te aviso"])),
            (A, "Tá bom, fico no aguardo!")]


@scene("visit_enrolled", is_lead=True, visita=False, prob=5,
       note="Fechou a matrícula e pagou pelo link: conversão confirmada, sem visita agendada.", split="heldout")
def _(v):
    return [(C, "Quero fazer a matrícula no plano anual, como faço?"),
            (A, "Que ótimo! Te mando o link de pagamento: pay.allpfit.com.br/anual 😊"),
            (C, "[imagem]"), (C, "Paguei, segue o comprovante"), (A, "Recebido! Matrícula feita, seja bem-vindo(a)! 🎉")]


@scene("visit_relative_confirmed", is_lead=True, visita=True, prob=5,
       note="Mãe marca aula experimental para o filho com dia e hora; o nome dado é do filho, não dela.", split="heldout")
def _(v):
    return [(C, f"Boa tarde! Queria marcar uma aula experimental pro meu filho, ele tem 16 anos. O nome dele é {v.other}"),
            (A, f"Boa tarde! Pode ser {v.day} às {v.hour}? Menor de idade precisa vir com o responsável."),
            (C, "Pode sim, eu vou junto. Confirmado!"), (A, f"Agendado para o {v.other.split()[0]}, {v.day} às {v.hour} ✅")]


@scene("visit_trial_by_bot", is_lead=True, visita=True, prob=5,
       note="Agendou pelo bot escolhendo dia e horário; o bot confirmou o agendamento.", split="heldout")
def _(v):
    return [(C, "oi"), (B, BOT_MENU.format(gym=v.gym)), (C, "3"),
            (B, "Ótimo! Escolha o dia da sua aula experimental: 1) amanhã 2) sexta 3) sábado"), (C, "2"),
            (B, "E o horário? 1) 7h 2) 12h 3) 19h"), (C, "3"),
            (B, "✅ Aula experimental agendada para sexta às 19h. Leve documento com foto!")]


@scene("visit_said_will_come_today", is_lead=True, visita=True, prob=5,
       note="Combinou de ir hoje em horário definido e a atendente confirmou.", split="heldout")
def _(v):
    return [(C, "Oi, posso ir hoje conhecer?"), (A, "Pode sim! Que horas você consegue?"), (C, f"Umas {v.hour} tá bom?"),
            (A, f"Perfeito, te espero hoje às {v.hour}! Procura a {v.agent} na recepção."), (C, "👍")]


# --------------------------------------------------------------------------------------------
# Names given, or given for someone else
# --------------------------------------------------------------------------------------------


@scene("name_intro_lead", is_lead=True, visita=False, prob=3, nome="stated",
       note="Contato se apresentou pelo nome e perguntou planos e horários.")
def _(v):
    return [(C, v.pick([f"Oi, meu nome é {v.me}. Queria saber os planos", f"Boa noite, aqui é {v.me}! Qual o valor da academia?",
                        f"Olá, me chamo {v.me}, gostaria de informações sobre a musculação"])),
            (A, f"Olá, {v.me.split()[0]}! Mensal {v.price} e anual R$ 69,90/mês. Funcionamos das 5h30 às 23h."),
            (C, "E tem aula de funcional à noite?"), (A, "Tem sim, às 19h e 20h!"), (C, "Ótimo, obrigada")]


@scene("name_asked_by_agent", is_lead=True, visita=True, prob=5, nome="stated",
       note="A atendente pediu o nome para o agendamento e o contato informou; aula marcada.")
def _(v):
    return [(C, "Quero fazer aula teste"), (A, "Claro! Qual seu nome completo pra eu agendar?"), (C, v.me),
            (A, f"Obrigada, {v.me.split()[0]}! Agendado {v.day} às {v.hour} ✅"), (C, "Valeu!")]


@scene("name_for_daughter", is_lead=True, visita=False, prob=3,
       note="Pergunta planos para a filha e dá o nome dela; o nome do contato não é o da filha.")
def _(v):
    return [(C, f"Boa tarde, queria saber valores pra minha filha, {v.other}, ela tem 15 anos"),
            (A, "Boa tarde! A partir de 14 anos pode treinar com autorização. Mensal " + v.price + "."),
            (C, "E tem professor acompanhando? Ela nunca treinou"), (A, "Tem sim, sempre tem instrutor na sala!"),
            (C, "Ok, vou conversar com ela")]


@scene("name_form_other", is_lead=True, visita=False, prob=3,
       note="Preencheu 'Nome:' com o nome do marido, para quem pede informações; o contato é outra pessoa.", split="heldout")
def _(v):
    return [(C, "Oi! É pro meu marido, ele quer começar a treinar"),
            (A, "Que legal! Me passa o nome e o melhor horário dele?"),
            (C, f"Nome: {v.other}. Ele só pode à noite depois das 19h"),
            (A, "Perfeito, à noite tem bastante instrutor. Mensal " + v.price + ", quer que eu já marque uma visita?"),
            (C, "Vou ver com ele e te falo")]


@scene("name_intro_visit", is_lead=True, visita=True, prob=5, nome="stated",
       note="Se apresentou ('aqui é o...') e marcou visita com dia e hora.", split="heldout")
def _(v):
    return [(C, f"Fala! Aqui é {v.me}, quero conhecer a academia"),
            (A, f"Fala, {v.me.split()[0]}! Quer vir {v.day} às {v.hour}?"), (C, "Fechou, tô lá"),
            (A, "Agendado! Até lá 💪")]


@scene("name_nickname", is_lead=True, visita=False, prob=2, nome="stated",
       note="Disse 'pode me chamar de ...' e perguntou o preço.", split="heldout")
def _(v):
    return [(C, f"Oi, tudo bem? Pode me chamar de {v.me}. Quanto é a mensalidade?"),
            (A, f"Oi, {v.me}! Está {v.price} no mensal."), (C, "Obrigada")]


# --------------------------------------------------------------------------------------------
# Current members: boletos, cancellations, complaints (not leads)
# --------------------------------------------------------------------------------------------


@scene("member_boleto", is_lead=False, visita=False, prob=0,
       note="Aluna atual pedindo a segunda via do boleto: assunto financeiro, não é lead.")
def _(v):
    return [(C, v.pick(["Oi, preciso da segunda via do boleto", "Bom dia, meu boleto venceu, como faço pra pagar?",
                        "Pode me mandar o boleto desse mês?"])),
            (B, BOT_MENU.format(gym=v.gym)), (C, "4"), (A, "Oi! Me passa seu CPF que eu gero o boleto atualizado."),
            (C, "123.456.789-00"), (A, "Prontinho, enviei no seu e-mail ✅")]


@scene("member_cancel", is_lead=False, visita=False, prob=0,
       note="Aluno quer cancelar o plano: não é lead.")
def _(v):
    return [(C, v.pick(["Quero cancelar meu plano", "Como faço pra cancelar a matrícula?", "Boa tarde, preciso trancar minha matrícula, vou viajar"])),
            (A, "Que pena! O cancelamento é feito na recepção com documento, e no plano anual tem multa de 10% do restante."),
            (C, v.pick(["Nossa, multa? Ninguém me falou isso", "Ok vou passar lá", "Tá bom"]))]


@scene("member_complaint", is_lead=False, visita=False, prob=0,
       note="Aluno reclamando do ar-condicionado e dos aparelhos: não é lead.")
def _(v):
    return [(C, v.pick(["O ar condicionado da sala de musculação tá quebrado de novo", "Gente, a esteira 3 tá quebrada há uma semana",
                        "Quero fazer uma reclamação sobre o professor da noite"])),
            (A, "Oi! Obrigada por avisar, já passei para a gerência."), (C, "Espero que resolvam, pago caro")]


@scene("member_pix_charged_twice", is_lead=False, visita=False, prob=0,
       note="Aluna cobrada duas vezes pede estorno: financeiro de aluna.", split="heldout")
def _(v):
    return [(C, "Oi, fui cobrada duas vezes no cartão esse mês 😡"), (A, "Oi! Me manda o print por favor que eu verifico."),
            (C, "[imagem]"), (A, "Vi aqui, vamos fazer o estorno em até 5 dias úteis."), (C, "Ok, aguardo")]


@scene("member_schedule_change", is_lead=False, visita=False, prob=0,
       note="Aluno atual perguntando o horário do feriado para treinar: já é aluno, não é lead.", split="heldout")
def _(v):
    return [(C, "Sou aluno aí, a academia abre no feriado de quinta?"), (A, "Oi! No feriado abrimos das 8h às 12h."),
            (C, "Valeu, até lá")]


@scene("member_freeze_plan", is_lead=False, visita=False, prob=0,
       note="Aluna pede para congelar o plano por cirurgia: não é lead.", split="heldout")
def _(v):
    return [(C, "Boa tarde, vou fazer uma cirurgia e preciso congelar meu plano por 2 meses"),
            (A, "Boa tarde! Pode sim, precisa trazer o atestado na recepção."), (C, "[arquivo]"),
            (A, "Recebido, plano congelado até julho ✅"), (C, "Obrigada!")]


@scene("member_dependent", is_lead=False, visita=False, prob=0,
       note="Aluno atual pergunta sobre o próprio contrato e a renovação automática: não é lead.")
def _(v):
    return [(C, "Oi meu plano renova automático? Vence mês que vem"),
            (A, "Oi! Sim, o plano recorrente renova sozinho no cartão."), (C, "Ah tá, blz")]


# --------------------------------------------------------------------------------------------
# Spam, wrong numbers, suppliers, job seekers (not leads)
# --------------------------------------------------------------------------------------------


@scene("spam_link", is_lead=False, visita=False, prob=0, nome=None,
       note="Spam com link de promoção/golpe: não é lead.")
def _(v):
    return [(C, v.pick(["🔥 PROMOÇÃO RELÂMPAGO 🔥 Ganhe R$ 500 no PIX agora! Clique no link: bit.ly/xyz123",
                        "Parabéns! Você foi selecionado para ganhar um iPhone 15. Acesse: premios-br.top",
                        "Seguro auto com 40% de desconto! Responda SIM para receber sua cotação"]))]


@scene("wrong_number", is_lead=False, visita=False, prob=0,
       note="Número errado: procurava outra pessoa.")
def _(v):
    return [(C, v.pick(["Oi Marcia, o bolo já tá pronto?", "Tio, chegou a encomenda?", "Bom dia, é da clínica odontológica?"])),
            (A, f"Olá! Aqui é da academia {v.gym} 😊"), (C, v.pick(["Ops, foi engano, desculpa", "Ih, número errado, foi mal", "Desculpa, engano"]))]


@scene("supplier", is_lead=False, visita=False, prob=0,
       note="Fornecedor oferecendo produto/serviço à academia: não é lead.")
def _(v):
    return [(C, v.pick(["Bom dia! Sou representante da NutriMax Suplementos, gostaria de apresentar nossa linha para revenda na academia",
                        "Olá, trabalho com manutenção de esteiras e bikes ergométricas, posso enviar um orçamento?",
                        "Boa tarde, somos uma empresa de uniformes personalizados, vocês têm interesse em camisetas para a equipe?"])),
            (A, "Olá! Pode mandar o material para o e-mail da gerência: gerencia@allpfit.com.br"), (C, "Obrigado, vou enviar hoje")]


@scene("job_seeker", is_lead=False, visita=False, prob=0,
       note="Candidato a vaga de emprego (personal/recepção): não é lead.")
def _(v):
    return [(C, v.pick(["Boa tarde! Vocês estão contratando? Sou formado em educação física", "Oi, tem vaga de recepcionista?",
                        "Olá, queria deixar meu currículo pra vaga de professor de musculação"])),
            (A, "Olá! Pode enviar o currículo para rh@allpfit.com.br"), (C, "[arquivo]"), (C, "Enviei aqui também, obrigado!")]


@scene("spam_marketing_agency", is_lead=False, visita=False, prob=0, nome=None,
       note="Agência de marketing oferecendo serviço: não é lead.", split="heldout")
def _(v):
    return [(C, "Oi! Vi o perfil de vocês no Instagram. Trabalho com tráfego pago e consigo dobrar as matrículas da academia em 30 dias. Posso te mostrar?"),
            (A, "Obrigada, no momento não temos interesse."), (C, "Se mudar de ideia me chama! 🚀")]


@scene("wrong_number_asks_who", is_lead=False, visita=False, prob=0,
       note="Contato responde a uma mensagem que não pediu, diz que não tem interesse.", split="heldout")
def _(v):
    return [(B, "Oi! Sentimos sua falta 💪 Volte a treinar com 50% de desconto na primeira mensalidade!"),
            (C, v.pick(["Quem é?", "Nunca fui aluno aí", "Não tenho interesse, pare de mandar mensagem"])),
            (A, "Desculpe o incômodo! Vamos retirar seu número da lista.")]


@scene("job_seeker_intern", is_lead=False, visita=False, prob=0,
       note="Estudante procurando estágio: não é lead.", split="heldout")
def _(v):
    return [(C, "Oi! Sou estudante de educação física e tô procurando estágio, vocês aceitam estagiário?"),
            (A, "Oi! Aceitamos sim, manda seu currículo no rh@allpfit.com.br"), (C, "Enviado! Obg")]


@scene("supplier_partnership", is_lead=False, visita=False, prob=0,
       note="Proposta de parceria comercial de loja de suplementos: não é lead.", split="heldout")
def _(v):
    return [(C, "Boa tarde! Tenho uma loja de suplementos no bairro e queria propor uma parceria de desconto pros alunos"),
            (A, "Boa tarde! Vou passar para o gerente, ele te retorna."), (C, "Obrigado!")]


# --------------------------------------------------------------------------------------------
# Bots reciting to a silent contact; greetings that go nowhere
# --------------------------------------------------------------------------------------------


@scene("bot_silent_contact", is_lead=False, visita=False, prob=0,
       note="Só o bot falou (menu e tabela de preços); o contato nunca escreveu.")
def _(v):
    return [(B, BOT_MENU.format(gym=v.gym)), (B, BOT_TABLE.format(p1=v.price)),
            (B, "Ainda está por aí? 😊 Posso te ajudar a agendar uma aula experimental gratuita!")]


@scene("bot_followup_ignored", is_lead=False, visita=False, prob=0,
       note="Campanha do bot com preços e visita; contato não respondeu nada.", split="heldout")
def _(v):
    return [(B, f"Oi! 👋 Você pediu informações na {v.gym}. Que tal uma aula experimental {v.day} às {v.hour}? Responda SIM para agendar."),
            (B, BOT_TABLE.format(p1=v.price)), (B, "Vou encerrar o atendimento por falta de resposta. Até mais!")]


@scene("greeting_then_silence", is_lead=False, visita=False, prob=1,
       note="Só mandou 'oi' e sumiu depois do menu; sem sinal de interesse.")
def _(v):
    return [(C, v.pick(["Oi", "Boa tarde", "oi bom dia", "Olá"])), (B, BOT_MENU.format(gym=v.gym)),
            (B, "Não recebemos sua resposta. O atendimento será encerrado. 😊")]


@scene("sticker_only", is_lead=False, visita=False, prob=0,
       note="Só figurinha/imagem e um 'kkk'; nada sobre a academia.", split="heldout")
def _(v):
    return [(C, "[imagem]"), (A, "Oi! Como posso ajudar?"), (C, "kkkkk foi sem querer")]


# --------------------------------------------------------------------------------------------
# Harder mixes
# --------------------------------------------------------------------------------------------


@scene("member_asks_for_friend", is_lead=True, visita=True, prob=5,
       note="Aluna traz amiga para aula experimental marcada; o interesse e a visita são da amiga.")
def _(v):
    return [(C, f"Oi, sou aluna aí. Minha amiga quer conhecer, posso levar ela {v.day} às {v.hour}?"),
            (A, "Claro! Me passa o nome dela que eu deixo a aula experimental agendada."),
            (C, f"{v.other}"), (A, f"Agendado para {v.other.split()[0]}, {v.day} às {v.hour} ✅")]


@scene("boleto_then_plan_upgrade", is_lead=False, visita=False, prob=1,
       note="Aluno pede boleto e pergunta do plano anual para si mesmo: continua sendo aluno, não lead novo.", split="heldout")
def _(v):
    return [(C, "Oi, me manda o boleto de junho"), (A, "Enviado no e-mail!"),
            (C, "E se eu mudar pro anual, quanto fica?"), (A, "Fica R$ 69,90/mês, posso migrar seu plano quando quiser.")]


@scene("price_objection_then_visit", is_lead=True, visita=True, prob=5,
       note="Achou caro, recebeu desconto e marcou visita com dia e hora.")
def _(v):
    return [(C, "Quanto é a mensalidade?"), (A, f"Mensal {v.price}."), (C, "Caro hein"),
            (A, "Consigo 20% no trimestral! Quer vir fazer uma aula grátis antes?"),
            (C, f"Ah assim sim. Pode ser {v.day} às {v.hour}?"), (A, f"Fechado! Anotado {v.day} às {v.hour} 😉")]


@scene("not_interested_after_bot", is_lead=False, visita=False, prob=0,
       note="Respondeu ao bot dizendo que não tem interesse.")
def _(v):
    return [(B, BOT_MENU.format(gym=v.gym)), (C, v.pick(["Não tenho interesse", "Sem interesse obrigado", "Não quero, obrigado"]))]


@scene("visit_question_hours_only", is_lead=True, visita=False, prob=3,
       note="Pergunta se pode visitar e a que horas a recepção atende, sem marcar nada.", split="heldout")
def _(v):
    return [(C, "Posso passar aí pra conhecer sem marcar?"), (A, "Pode sim! A recepção atende das 6h às 22h."),
            (C, "Ótimo, valeu")]


@scene("long_back_and_forth", is_lead=True, visita=True, prob=5,
       note="Muitas perguntas (preço, modalidades, estacionamento) e visita confirmada no fim.")
def _(v):
    return [(C, "Boa noite"), (B, BOT_MENU.format(gym=v.gym)), (C, "5"), (A, f"Boa noite! Aqui é a {v.agent}, em que posso ajudar?"),
            (C, "Queria saber os valores e se tem aula de " + v.pick(MODALITIES)), (A, f"Tem sim! Mensal {v.price}, com todas as aulas."),
            (C, "Tem estacionamento?"), (A, "Temos, gratuito para alunos."), (C, "[áudio]"),
            (A, f"Entendi! Então fica marcado pra você vir {v.day} às {v.hour} fazer a experimental, ok?"), (C, "Ok! Até lá")]


class Slots:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self.gym, self.agent = rng.choice(GYMS), rng.choice(AGENTS)
        self.day, self.hour, self.price = rng.choice(DAYS), rng.choice(HOURS), rng.choice(PRICES)
        self.me = f"{rng.choice(FIRST)}" + (f" {rng.choice(LAST)}" if rng.random() < 0.4 else "")
        self.other = f"{rng.choice(FIRST)} {rng.choice(LAST)}"

    def pick(self, options):
        return self.rng.choice(options)


def display_name(rng: random.Random, sc: Scene, slots: Slots) -> tuple[str | None, str | None]:
    """(contact_name, nome label) for a scene."""
    if sc.nome is None:  # spam: a business or a number, never a person
        shown = rng.choice(["+55 11 91234-0000", "Promoções BR", "Marketing Digital 🚀", "+55 62 98888-7777"])
        return shown, None
    if sc.nome == "stated":
        shown = rng.choice(NOT_PERSON + [slots.me.split()[0]])
        return shown, slots.me
    roll = rng.random()
    if roll < 0.55:
        person = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        return person + (rng.choice([" 💪", " 🌸", " ✨"]) if rng.random() < 0.15 else ""), person
    if roll < 0.9:
        return rng.choice(NOT_PERSON), None
    return None, None


def timestamps(rng: random.Random, count: int, day_index: int) -> list[str]:
    start = dt.datetime(2025, 3, 3, tzinfo=TZ) + dt.timedelta(days=day_index % 80,
                                                               minutes=rng.randrange(6 * 60, 22 * 60))
    out, t = [], start
    for _ in range(count):
        out.append(t.isoformat(timespec="seconds"))
        t += dt.timedelta(seconds=rng.randrange(20, 900) if rng.random() < 0.85 else rng.randrange(3600, 20 * 3600))
    return out


def compose(rng: random.Random, sc: Scene, number: int) -> dict:
    slots = Slots(rng)
    turns = sc.turns(slots)
    shown, nome = display_name(rng, sc, slots)
    at = timestamps(rng, len(turns), number)
    messages = []
    for (role, text), when in zip(turns, at):
        if role == C and not text.startswith("[") and sc.nome != "stated":
            text = whatsappify(rng, text)
        messages.append({"role": role, "text": text, "at": when})
    return {"id": f"{sc.split}-{number:03d}-{sc.key}", "contact_name": shown, "messages": messages,
            "labels": {"is_lead": sc.is_lead, "visita_agendada": sc.visita, "probabilidade_conversao": sc.prob,
                       "nome": nome},
            "note": sc.note}


def main() -> None:
    rng = random.Random(SEED)
    per_split = {"dev": 124, "heldout": 100}
    for split, total in per_split.items():
        scenes = [s for s in SCENES if s.split == split]
        rows = [compose(rng, scenes[i % len(scenes)], i + 1) for i in range(total)]
        rng.shuffle(rows)
        path = OUT / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        print(f"{path}: {len(rows)} conversations from {len(scenes)} scenes")


if __name__ == "__main__":
    main()
