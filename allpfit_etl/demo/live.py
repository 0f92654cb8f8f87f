"""Live Chatwoot traffic, written message by message in real time (no Dagster).

``LiveTraffic`` opens, for every account, a new WhatsApp conversation every ``every_s`` seconds
for ``duration_min`` minutes; each conversation gets ``messages`` messages ``gap_s`` seconds
apart, the contact first and last and the gym's bot answering in between, each written when
it is due, with the wall-clock time as its ``created_at``. Every message bumps its
conversation's ``updated_at`` and ``last_activity_at``, as Chatwoot does; a share of the
conversations (``resolve_fraction``) is resolved at its end (``status = 1`` and Chatwoot's
activity message). What was written is recorded per conversation (``records()``), so a test or
a benchmark can measure how fresh the analytics are.

The single-message helpers (``open_conversation``, ``write_message``, ``resolve_conversation``)
also serve tests that continue a conversation later. Timestamps are naive UTC, as Chatwoot
stores them; ids come from the tables' own sequences, as in Chatwoot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import heapq
import json
import math
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import sqlalchemy as sa

from allpfit_etl.demo import phrases
from allpfit_etl.demo.seed import ACTIVITY, INCOMING, TABLES

RESOLVED = 1  # Chatwoot's conversation status enum: 0 open, 1 resolved, 2 pending, 3 snoozed


def utc_now() -> dt.datetime:
    """Now, as Chatwoot stores it: naive UTC."""
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------
# What a live WhatsApp chat with a gym says: the contact opens, the bot greets with its menu,
# questions and answers, the contact closes.

_OPENINGS = ("Oi, boa tarde!", "Olá, tudo bem?", "Bom dia! 😊", "oi", "Boa noite, vocês estão atendendo?",
             "Olá! Vi o anúncio de vocês no Instagram", "oii, tudo bom?")
_CLOSINGS = ("combinado, obrigada!", "ok, vou pensar, obrigado", "👍", "perfeito, até lá!", "valeu!",
             "beleza, obrigado pela atenção", "show, obrigada 😊", "tá bom, qualquer coisa volto a chamar")
# (contact, bot) exchanges, in the order a chat usually takes them; {…} filled per conversation.
_EXCHANGES = (
    ("qual o valor da mensalidade?", "Temos {plan}, com acesso a {modality} e musculação. 💪"),
    ("vcs tem plano anual? qual o preço?", "Sim! Ficam {plan}. No anual a matrícula é grátis. 😉"),
    ("tem taxa de matrícula?", "Este mês a matrícula está isenta em todos os planos!"),
    ("quais os horários de {modality}?", "As turmas de {modality} são às {hour} e às {hour2}, de segunda a sexta."),
    ("qual o horário de funcionamento no sábado?", "Sábado das 8h às 14h e domingo das 8h às 12h."),
    ("aceita cartão ou pix?", "Aceitamos cartão de crédito, débito, pix e boleto. 😊"),
    ("qual o endereço de vocês?", "Estamos na Av. Rio Branco, 1200, Centro, com estacionamento gratuito. 🚗"),
    ("tem desconto pra estudante?", "Tem sim! 15% de desconto com carteirinha de estudante válida."),
    ("queria fazer uma aula experimental de {modality}", "Claro! Qual dia e horário fica melhor pra você?"),
    ("{intro}, pode ser {day} às {hour}?",
     "Agendado! Te esperamos {day} às {hour}. Traga roupa confortável e uma garrafinha d'água. 😉"),
    ("preciso levar alguma coisa na aula experimental?", "Só roupa de treino, tênis e uma toalha. Nós temos armários!"),
)


def live_script(rng: random.Random, gym: str, messages: int, first_name: str | None = None) -> list[phrases.Step]:
    """``messages`` steps: the contact first and last, the bot (``AgentBot``) in between (twice
    the contact in a row at the end when ``messages`` is even)."""
    if messages < 1:
        raise ValueError(f"a conversation has at least one message, got {messages}")
    name = first_name or rng.choice(phrases.FIRST_NAMES)
    hour, hour2 = rng.sample(phrases.HOURS, 2)
    fill = {
        "plan": rng.choice(phrases.PLANS), "modality": rng.choice(phrases.MODALITIES), "day": rng.choice(phrases.DAYS),
        "hour": hour, "hour2": hour2,
        "intro": rng.choice((f"meu nome é {name} {rng.choice(phrases.LAST_NAMES)}", f"aqui é a {name}", f"sou o {name}")),
    }
    # a random subset of the exchanges, kept in their usual order, cycled when the chat is long
    order = sorted(rng.sample(range(len(_EXCHANGES)), k=rng.randrange(4, len(_EXCHANGES) + 1)))
    exchanges = (_EXCHANGES[i] for n in range(messages) for i in order)
    steps = [phrases.contact(rng.choice(_OPENINGS))]
    if messages >= 3:
        steps += phrases.greeting(gym)
    while len(steps) < messages - 1:
        question, answer = next(exchanges)
        steps.append(phrases.contact(question.format(**fill)))
        if len(steps) < messages - 1:
            steps.append(phrases.bot(answer.format(**fill)))
    if messages >= 2:
        steps.append(phrases.contact(rng.choice(_CLOSINGS)))
    return steps


# ---------------------------------------------------------------------------------------------
# One row at a time, as Chatwoot writes them.


def _insert(conn: sa.Connection, table: str, row: dict) -> int:
    columns = ", ".join(row)
    values = ", ".join(f":{k}" for k in row)
    return int(conn.execute(sa.text(f"INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id"), row).scalar_one())


def sync_sequences(engine: sa.Engine) -> None:
    """On PostgreSQL, move every table's id sequence past its largest id (rows written with
    explicit ids, by a seed or a test, leave the sequences behind)."""
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as conn:
        for table in TABLES:
            conn.execute(sa.text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), GREATEST("
                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}),"
                f" (SELECT last_value FROM {table}_id_seq) + 1), false)"))


def ensure_account(engine: sa.Engine, account_id: int, name: str | None = None) -> int:
    """The account (created with ``name`` when missing) and its WhatsApp inbox; returns the inbox id."""
    now = utc_now()
    name = name or f"Academia {account_id}"
    with engine.begin() as conn:
        if not conn.execute(sa.text("SELECT 1 FROM accounts WHERE id = :id"), {"id": account_id}).first():
            conn.execute(sa.text("INSERT INTO accounts (id, name, created_at, updated_at) VALUES (:id, :n, :t, :t)"),
                         {"id": account_id, "n": name, "t": now})
        inbox = conn.execute(sa.text(
            "SELECT MIN(id) FROM inboxes WHERE account_id = :a AND channel_type = 'Channel::Whatsapp'"),
            {"a": account_id}).scalar()
        if inbox is None:
            inbox = _insert(conn, "inboxes", {
                "channel_id": 1, "account_id": account_id, "name": f"WhatsApp {name}", "created_at": now,
                "updated_at": now, "channel_type": "Channel::Whatsapp"})
    return int(inbox)


def account_name(engine: sa.Engine, account_id: int) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT name FROM accounts WHERE id = :id"), {"id": account_id}).scalar_one()


def _new_conversation(conn: sa.Connection, account_id: int, inbox_id: int, contact_name: str | None,
                      at: dt.datetime) -> int:
    contact = _insert(conn, "contacts", {
        "name": contact_name, "account_id": account_id, "created_at": at, "updated_at": at,
        "phone_number": f"+55849{random.randrange(10_000_000, 99_999_999)}"})
    if conn.dialect.name == "postgresql":  # concurrent writers: one new display_id per account at a time
        conn.execute(sa.text("SELECT 1 FROM accounts WHERE id = :a FOR UPDATE"), {"a": account_id})
    display = int(conn.execute(sa.text(
        "SELECT COALESCE(MAX(display_id), 0) + 1 FROM conversations WHERE account_id = :a"), {"a": account_id}).scalar_one())
    return _insert(conn, "conversations", {
        "account_id": account_id, "inbox_id": inbox_id, "status": 0, "created_at": at, "updated_at": at,
        "contact_id": contact, "display_id": display, "last_activity_at": at})


def _new_message(conn: sa.Connection, conversation_id: int, content: str | None, message_type: int,
                 sender_type: str | None, at: dt.datetime, status: int | None = None) -> None:
    account_id, inbox_id = conn.execute(sa.text("SELECT account_id, inbox_id FROM conversations WHERE id = :c"),
                                        {"c": conversation_id}).one()
    _insert(conn, "messages", {
        "content": content, "account_id": account_id, "inbox_id": inbox_id, "conversation_id": conversation_id,
        "message_type": message_type, "created_at": at, "updated_at": at, "private": False,
        "sender_type": sender_type, "content_attributes": "{}"})
    new_status = "" if status is None else ", status = :s"
    conn.execute(sa.text(f"UPDATE conversations SET updated_at = :at, last_activity_at = :at{new_status} WHERE id = :c"),
                 {"at": at, "c": conversation_id, **({} if status is None else {"s": status})})


def open_conversation(engine: sa.Engine, account_id: int, inbox_id: int, contact_name: str | None,
                      first: phrases.Step | None = None, at: dt.datetime | None = None) -> tuple[int, dt.datetime]:
    """A new open conversation (and its contact) created at ``at`` (default now), with its
    ``first`` message when given, in one transaction; returns (its id, ``at``)."""
    with engine.begin() as conn:
        at = at or utc_now()
        conversation_id = _new_conversation(conn, account_id, inbox_id, contact_name, at)
        if first is not None:
            _new_message(conn, conversation_id, first.text, first.message_type, first.sender_type, at)
    return conversation_id, at


def write_message(engine: sa.Engine, conversation_id: int, content: str | None, *, message_type: int = INCOMING,
                  sender_type: str | None = "Contact", at: dt.datetime | None = None) -> dt.datetime:
    """One message, and its conversation's ``updated_at``/``last_activity_at`` moved to it, in one
    transaction; returns the message's ``created_at``."""
    with engine.begin() as conn:
        at = at or utc_now()  # taken inside the transaction: a single writer commits in timestamp order
        _new_message(conn, conversation_id, content, message_type, sender_type, at)
    return at


def write_step(engine: sa.Engine, conversation_id: int, step: phrases.Step, at: dt.datetime | None = None) -> dt.datetime:
    return write_message(engine, conversation_id, step.text, message_type=step.message_type,
                         sender_type=step.sender_type, at=at)


def resolve_conversation(engine: sa.Engine, conversation_id: int, agent: str = "Sistema",
                         at: dt.datetime | None = None) -> dt.datetime:
    """Resolve a conversation as Chatwoot does: ``status = 1`` and the activity message (which
    never reaches the transcript), in one transaction; returns when."""
    with engine.begin() as conn:
        at = at or utc_now()
        _new_message(conn, conversation_id, f"Conversa foi resolvida por {agent}", ACTIVITY, None, at, status=RESOLVED)
    return at


# ---------------------------------------------------------------------------------------------
# The schedule.


@dataclass
class LiveConversation:
    """What the writer wrote into one conversation (naive UTC times)."""

    account_id: int
    conversation_id: int
    contact_name: str | None
    planned_messages: int
    resolve: bool = False
    messages: int = 0
    first_message_at: dt.datetime | None = None
    last_message_at: dt.datetime | None = None
    resolved_at: dt.datetime | None = None

    @property
    def finished(self) -> bool:
        return self.messages == self.planned_messages and (not self.resolve or self.resolved_at is not None)

    def as_json(self) -> dict:
        data = dataclasses.asdict(self)
        for key in ("first_message_at", "last_message_at", "resolved_at"):
            data[key] = data[key].isoformat() if data[key] else None
        return data


@dataclass(frozen=True)
class LiveSchedule:
    duration_min: float  # minutes during which new conversations start
    every_s: float = 45.0  # a new conversation per account every this many seconds
    gap_s: float = 25.0  # between two messages of a conversation
    messages: int = 11
    resolve_fraction: float = 0.0  # this share of the conversations is resolved after its last message
    seed: int = 1

    def validated(self) -> "LiveSchedule":
        if not self.duration_min > 0 or not self.every_s > 0 or self.gap_s < 0 or self.messages < 1:
            raise ValueError("live traffic needs minutes > 0, every > 0, gap >= 0 and at least one message")
        if not 0 <= self.resolve_fraction <= 1:
            raise ValueError(f"resolve fraction must be between 0 and 1, got {self.resolve_fraction}")
        return self

    def conversations_per_account(self) -> int:
        return max(1, math.ceil(self.duration_min * 60 / self.every_s - 1e-9))

    def seconds(self, accounts: int = 1) -> float:
        """From the first message to the last one, for this many accounts (their conversations
        start ``every_s / accounts`` apart)."""
        last_start = (self.conversations_per_account() - 1) * self.every_s + (accounts - 1) * self.every_s / accounts
        return last_start + (self.messages - 1) * self.gap_s


class LiveTraffic:
    """``LiveTraffic(engine, accounts, schedule).run()`` (blocking) or ``.start()`` / ``.join()``.

    ``accounts``: Chatwoot account ids (created, with a WhatsApp inbox, when missing). The
    accounts' conversations start staggered, ``every_s / len(accounts)`` apart, so that the
    writes spread evenly. ``records()`` is safe to call while the traffic runs."""

    def __init__(self, engine: sa.Engine, accounts: Iterable[int], schedule: LiveSchedule, *,
                 on_write: Callable[[LiveConversation], None] | None = None):
        self.engine, self.schedule = engine, schedule.validated()
        self.accounts = list(accounts)
        if not self.accounts:
            raise ValueError("live traffic needs at least one account")
        self.on_write = on_write
        self._rng = random.Random(schedule.seed)
        self._lock = threading.Lock()
        self._records: list[LiveConversation] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self.started_at: float | None = None  # time.monotonic() of the first write

    # --- reading what was written
    def records(self) -> list[LiveConversation]:
        with self._lock:
            return [dataclasses.replace(r) for r in self._records]

    def planned(self) -> int:
        return len(self.accounts) * self.schedule.conversations_per_account()

    # --- running
    def start(self) -> "LiveTraffic":
        self._thread = threading.Thread(target=self._run_catching, name="live-traffic", daemon=True)
        self._thread.start()
        return self

    def join(self, timeout: float | None = None) -> list[LiveConversation]:
        if self._thread is not None:
            self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        return self.records()

    def is_alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()

    def _run_catching(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # handed to join()
            self.error = exc

    def run(self) -> list[LiveConversation]:
        s = self.schedule
        sync_sequences(self.engine)
        inboxes = {a: ensure_account(self.engine, a) for a in self.accounts}
        names = {a: account_name(self.engine, a) for a in self.accounts}
        # (due offset, tie-breaker, action, conversation slot, message index)
        events: list[tuple[float, int, str, int, int]] = []
        plans: list[tuple[int, list[phrases.Step], bool, str | None]] = []
        for k in range(s.conversations_per_account()):
            for j, account in enumerate(self.accounts):
                start = k * s.every_s + j * s.every_s / len(self.accounts)
                contact = self._contact_name()
                first_name = None if not contact or contact.startswith("+") else contact.split(" ")[0]
                steps = live_script(self._rng, names[account], s.messages, first_name)
                slot = len(plans)
                # resolve_fraction of the conversations, spread evenly over the schedule
                resolve = int((slot + 1) * s.resolve_fraction) > int(slot * s.resolve_fraction)
                plans.append((account, steps, resolve, contact))
                for i in range(s.messages):
                    events.append((start + i * s.gap_s, len(events), "message", slot, i))
                if resolve:
                    events.append((start + (s.messages - 1) * s.gap_s + min(1.0, s.gap_s), len(events), "resolve", slot, 0))
        heapq.heapify(events)
        slots: dict[int, LiveConversation] = {}
        origin = time.monotonic()
        self.started_at = origin
        while events and not self._stop.is_set():
            due, _, action, slot, index = heapq.heappop(events)
            wait = origin + due - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            account, steps, resolve, contact = plans[slot]
            if action == "message":
                if index == 0:
                    conversation, at = open_conversation(self.engine, account, inboxes[account], contact, steps[0])
                    record = slots[slot] = LiveConversation(account, conversation, contact, len(steps), resolve)
                    with self._lock:
                        self._records.append(record)
                else:
                    record = slots[slot]
                    at = write_step(self.engine, record.conversation_id, steps[index])
                with self._lock:
                    record.messages += 1
                    record.first_message_at = record.first_message_at or at
                    record.last_message_at = at
            else:
                record = slots[slot]
                at = resolve_conversation(self.engine, record.conversation_id, self._rng.choice(phrases.AGENTS))
                with self._lock:
                    record.resolved_at = at
            if self.on_write is not None:
                self.on_write(dataclasses.replace(record))
        return self.records()

    def _contact_name(self) -> str | None:
        roll = self._rng.random()
        if roll < 0.08:  # WhatsApp shows the number when the contact has no name
            return f"+55 84 9{self._rng.randrange(1000, 9999)}-{self._rng.randrange(1000, 9999)}"
        first, last = self._rng.choice(phrases.FIRST_NAMES), self._rng.choice(phrases.LAST_NAMES)
        return f"{first} {last}" if self._rng.random() < 0.6 else first


def write_records(records: Iterable[LiveConversation], path) -> None:
    """One JSON object per line and conversation."""
    with open(path, "w", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record.as_json(), ensure_ascii=False) + "\n")


def write_live_demo(engine: sa.Engine, schedule: LiveSchedule, accounts: Iterable[int] | None = None,
                    record_path=None, out: Callable[[str], None] = print) -> list[LiveConversation]:
    """``allpfit-etl seed-demo --live``: the Chatwoot schema, the accounts (by default the demo's
    four tenants, with their names) and the traffic, one line per finished conversation."""
    from allpfit_etl.demo.seed import DEMO_TENANTS, create_chatwoot_schema

    create_chatwoot_schema(engine)
    names = {t.account_id: t.name for t in DEMO_TENANTS}
    accounts = list(accounts or names)
    for account in accounts:
        ensure_account(engine, account, names.get(account))

    def report(record: LiveConversation) -> None:
        if record.finished:
            out(f"  account {record.account_id} conversation {record.conversation_id}: {record.messages} messages "
                f"{record.first_message_at:%H:%M:%S} → {record.last_message_at:%H:%M:%S} UTC"
                + (" (resolved)" if record.resolved_at else ""))

    traffic = LiveTraffic(engine, accounts, schedule, on_write=report)
    out(f"live traffic into Chatwoot account(s) {', '.join(map(str, accounts))}: a conversation every "
        f"{schedule.every_s:g} s per account for {schedule.duration_min:g} min ({traffic.planned()} conversations), "
        f"{schedule.messages} messages {schedule.gap_s:g} s apart; about {schedule.seconds(len(accounts)) / 60:.1f} min in all")
    try:
        records = traffic.run()
    except KeyboardInterrupt:  # Ctrl-C ends the traffic early; what was written is kept and recorded
        records = traffic.records()
    finally:
        if record_path is not None:
            write_records(traffic.records(), record_path)
    out(f"wrote {len(records)} conversations, {sum(r.messages for r in records)} messages"
        + (f"; record in {record_path}" if record_path is not None else ""))
    return records
