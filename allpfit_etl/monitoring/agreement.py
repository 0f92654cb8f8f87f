"""Regex vs OpenAI on the same conversations: agreement, Cohen's kappa, the disagreements, and
quality per analyzer. Pure functions on pandas frames of stored answers (``answers_for_days.sql``)."""

from __future__ import annotations

import unicodedata

import pandas as pd

KEYS = ["conversation_id", "day", "display_id", "content_hash"]
ANSWER_FIELDS = ["model", "is_lead", "visita_agendada", "probabilidade_conversao", "nome_mapeado_bot", "analise_ia",
                 "prompt_tokens", "cached_tokens", "completion_tokens"]
# table prefix → (answer field, rate column suffix)
MATRIX_FIELDS = {"is_lead": ("is_lead", "lead_rate"), "visita": ("visita_agendada", "visita_rate")}
PROBABILITY_GAP = 2  # a difference this large in probabilidade_conversao is a disagreement


def latest_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """One answer per (conversation, analyzer): the newest, when a model or prompt change left several."""
    if answers.empty:
        return answers
    ordered = answers.sort_values(["analyzed_at", "model", "prompt_version"], kind="stable")
    return ordered.drop_duplicates(["conversation_id", "analyzer"], keep="last")


def pair_answers(answers: pd.DataFrame) -> pd.DataFrame:
    """One row per conversation answered by both analyzers for its current content hash, with
    ``regex_<field>`` and ``openai_<field>`` columns."""
    latest = latest_answers(answers)
    columns = KEYS + [f"{side}_{f}" for side in ("regex", "openai") for f in ANSWER_FIELDS]
    if latest.empty:
        return pd.DataFrame(columns=columns)
    sides = []
    for side in ("regex", "openai"):
        part = latest[latest["analyzer"] == side][KEYS + ANSWER_FIELDS]
        sides.append(part.rename(columns={f: f"{side}_{f}" for f in ANSWER_FIELDS}))
    paired = sides[0].merge(sides[1], on=KEYS, how="inner")
    for side in ("regex", "openai"):
        for field in ("is_lead", "visita_agendada"):
            paired[f"{side}_{field}"] = paired[f"{side}_{field}"].astype(bool)
        paired[f"{side}_probabilidade_conversao"] = paired[f"{side}_probabilidade_conversao"].astype(int)
    return paired[columns].sort_values("conversation_id").reset_index(drop=True)


def confusion_matrix(regex: pd.Series, openai: pd.Series) -> dict[str, int]:
    """Counts named ``<regex answer>_<openai answer>``."""
    regex, openai = regex.astype(bool), openai.astype(bool)
    return {
        "true_true": int((regex & openai).sum()),
        "true_false": int((regex & ~openai).sum()),
        "false_true": int((~regex & openai).sum()),
        "false_false": int((~regex & ~openai).sum()),
    }


def cohen_kappa(true_true: int, true_false: int, false_true: int, false_false: int) -> float | None:
    """Cohen's kappa of a 2×2 matrix, or None when it is undefined (nothing compared, or both
    analyzers gave one and the same class only, so chance agreement is 1).

    In integers, so no float dust decides whether the denominator is zero:
    kappa = (n·agree − Σ rowᵢ·colᵢ) / (n² − Σ rowᵢ·colᵢ).
    """
    n = true_true + true_false + false_true + false_false
    regex_true, openai_true = true_true + true_false, true_true + false_true
    chance = regex_true * openai_true + (n - regex_true) * (n - openai_true)
    denominator = n * n - chance
    if n == 0 or denominator == 0:
        return None
    return (n * (true_true + false_false) - chance) / denominator


def fold_name(name) -> str:
    """Case, accents and spacing do not make two names different; no name is ''."""
    if name is None or (isinstance(name, float) and pd.isna(name)):
        return ""
    decomposed = unicodedata.normalize("NFKD", str(name))
    return " ".join("".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold().split())


def _rate(count: int, total: int) -> float | None:
    return count / total if total else None


def agreement_figures(paired: pd.DataFrame) -> dict:
    """The analyzer_agreement row's figures for a set of paired answers."""
    n = len(paired)
    row: dict = {"compared": n}
    for name, (field, rate) in MATRIX_FIELDS.items():
        matrix = confusion_matrix(paired[f"regex_{field}"], paired[f"openai_{field}"]) if n else dict.fromkeys(
            ("true_true", "true_false", "false_true", "false_false"), 0)
        for cell, count in matrix.items():
            row[f"{name}_{cell}"] = count
        row[f"{name}_agreement"] = _rate(matrix["true_true"] + matrix["false_false"], n)
        row[f"{name}_kappa"] = cohen_kappa(**matrix)
        row[f"regex_{rate}"] = _rate(matrix["true_true"] + matrix["true_false"], n)
        row[f"openai_{rate}"] = _rate(matrix["true_true"] + matrix["false_true"], n)
    if n:
        gap = (paired["regex_probabilidade_conversao"] - paired["openai_probabilidade_conversao"]).abs()
        row["probabilidade_mae"] = float(gap.mean())
        names_equal = paired["regex_nome_mapeado_bot"].map(fold_name) == paired["openai_nome_mapeado_bot"].map(fold_name)
        row["names_match_share"] = float(names_equal.mean())
        models = paired["openai_model"].dropna().unique()
        row["openai_model"] = ", ".join(sorted(models))
    else:
        row.update(probabilidade_mae=None, names_match_share=None, openai_model=None)
    row["disagreements"] = len(disagreements(paired))
    return row


def disagreements(paired: pd.DataFrame) -> pd.DataFrame:
    """Paired answers that disagree on is_lead or visita_agendada, or differ by ≥ 2 in probability,
    clearest first (severity: 2 per flag that differs + the probability gap)."""
    if paired.empty:
        return paired.assign(severity=pd.Series(dtype=int))
    lead = paired["regex_is_lead"] != paired["openai_is_lead"]
    visit = paired["regex_visita_agendada"] != paired["openai_visita_agendada"]
    gap = (paired["regex_probabilidade_conversao"] - paired["openai_probabilidade_conversao"]).abs()
    severity = 2 * lead.astype(int) + 2 * visit.astype(int) + gap
    chosen = paired.assign(severity=severity.astype(int))[lead | visit | (gap >= PROBABILITY_GAP)]
    return chosen.sort_values(["severity", "conversation_id"], ascending=[False, True]).reset_index(drop=True)


def markdown_table(row: dict) -> str:
    """The agreement figures as a Markdown table (asset metadata, the CLI)."""

    def show(value, percent=False):
        if value is None:
            return "—"
        return f"{value:.1%}" if percent else (f"{value:.3f}" if isinstance(value, float) else str(value))

    lines = [
        "| figure | is_lead | visita_agendada |",
        "|---|---|---|",
        f"| agreement | {show(row['is_lead_agreement'], True)} | {show(row['visita_agreement'], True)} |",
        f"| Cohen's kappa | {show(row['is_lead_kappa'])} | {show(row['visita_kappa'])} |",
        f"| regex rate | {show(row['regex_lead_rate'], True)} | {show(row['regex_visita_rate'], True)} |",
        f"| OpenAI rate | {show(row['openai_lead_rate'], True)} | {show(row['openai_visita_rate'], True)} |",
        f"| both yes / regex only / OpenAI only / both no | {row['is_lead_true_true']} / {row['is_lead_true_false']} / "
        f"{row['is_lead_false_true']} / {row['is_lead_false_false']} | {row['visita_true_true']} / "
        f"{row['visita_true_false']} / {row['visita_false_true']} / {row['visita_false_false']} |",
        "",
        f"compared: {row['compared']} · probabilidade MAE: {show(row['probabilidade_mae'])} · "
        f"names that match: {show(row['names_match_share'], True)} · disagreements: {row['disagreements']}",
    ]
    return "\n".join(lines)
