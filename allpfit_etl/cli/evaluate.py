"""``allpfit-etl eval``: an analyser (and prompt version) against a labelled set; stored, then printed.

Only the parser is built at start-up: the evaluation modules (pandas among them) load when
``eval`` runs, so other commands do not pay for them."""

from __future__ import annotations

import argparse
import json
import os

from allpfit_etl.errors import ConfigError
from allpfit_etl.identities import PROMPT_VERSION

BUNDLED_SETS = ("heldout", "dev")  # evaluation/data/<name>.jsonl


def add_eval_parser(sub) -> None:
    parser = sub.add_parser("eval", help="measure an analyser against a labelled set (default: the bundled held-out set)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--file", metavar="F.jsonl", help="a labelled set in the JSON Lines format of docs/evaluation.md")
    source.add_argument("--set", choices=BUNDLED_SETS, default="heldout", help="a bundled set (default: heldout)")
    parser.add_argument("--analyzer", choices=("regex", "openai"), default="regex")
    parser.add_argument("--model", default="gpt-4o-mini", help="OpenAI model (default gpt-4o-mini)")
    parser.add_argument("--prompt", default=PROMPT_VERSION, metavar="VERSION", help=f"prompt version (default {PROMPT_VERSION})")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    parser.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    import sqlalchemy as sa

    from allpfit_etl import settings
    from allpfit_etl.analysis.prompts import require_prompt_version
    from allpfit_etl.cli.main import analytics_engine
    from allpfit_etl.evaluation.dataset import bundled_path, load_eval_set
    from allpfit_etl.evaluation.runner import endpoint_label, run_evaluation
    from allpfit_etl.evaluation.store import TABLE, save_evaluation

    eval_set = load_eval_set(args.file or bundled_path(args.set))  # a malformed file stops here: nothing spent
    engine = analytics_engine()
    if not sa.inspect(engine).has_table(TABLE):
        raise ConfigError("analytics schema predates evaluations: run `allpfit-etl init` to upgrade it")
    from allpfit_etl.evaluation.runner import EvalSpec

    spec = EvalSpec(args.analyzer, args.model, args.prompt, settings.timezone_name())
    if spec.analyzer == "openai":
        require_prompt_version(spec.prompt_version)
        base_url = os.environ.get("OPENAI_BASE_URL") or None
        analyzer, priced = build_openai_analyzer(spec, os.environ.get("OPENAI_API_KEY"), base_url)
        report = run_evaluation(eval_set, spec, analyzer, priced=priced, endpoint=endpoint_label(base_url))
    else:
        report = run_evaluation(eval_set, spec)
    report.evaluation_id = save_evaluation(engine, report)
    print(json.dumps(report.as_json(), ensure_ascii=False) if args.json else render(report))
    return 0


def build_openai_analyzer(spec, api_key: str | None, base_url: str | None):
    """The pipeline's analyser and client factory (``LeadAnalysisOpenAI``), tenant 0, no ledger:
    an evaluation's spend is recorded in ``prompt_evaluations`` only. Returns (analyzer, priced)."""
    from allpfit_etl.analysis.openai_analyzer import OpenAIAnalyzer
    from allpfit_etl.analysis.openai_resource import LeadAnalysisOpenAI
    from allpfit_etl.analysis.pricing import price_for
    from allpfit_etl.evaluation.runner import NO_PRICE

    resource = LeadAnalysisOpenAI(api_key=api_key, base_url=base_url)
    try:
        price, priced = price_for(spec.model, resource.price_overrides), True
    except ConfigError:  # a local model: its answers still count, its cost is unknown
        price, priced = NO_PRICE, False
    analyzer = OpenAIAnalyzer(
        resource.client_factory(), tenant_id=0, model=spec.model, price=price,
        rate_limits=resource.configured_limits(spec.model), timeout_s=resource.timeout_s,
        max_attempts=resource.max_attempts, usd_brl=resource.usd_brl, max_prompt_tokens=resource.max_prompt_tokens,
        prompt_version=spec.prompt_version,
    )
    return analyzer, priced


def _figure(value: float | None, width: int = 9) -> str:
    return f"{'—' if value is None else f'{value:.3f}':>{width}}"


def _row(name: str, s) -> str:
    return (f"  {name:<16}{_figure(s.precision)}{_figure(s.recall)}{_figure(s.f1)}{_figure(s.kappa)}"
            f"{s.tp:>6}{s.fp:>6}{s.fn:>6}{s.tn:>6}")


def _answer(a: dict) -> str:
    return (f"lead={'sim' if a['is_lead'] else 'não'} visita={'sim' if a['visita_agendada'] else 'não'} "
            f"p={a['probabilidade_conversao']} nome={a['nome'] or '—'}")


def render(report) -> str:
    q, u = report.quality, report.usage
    who = "regex" if report.analyzer == "regex" else f"openai {report.model} @ {report.endpoint}"
    lines = [
        f"evaluation #{report.evaluation_id}: {who}, prompt {report.prompt_version}, on {report.set_name} "
        f"({q.conversations} conversations, sha256 {report.fingerprint[:12]}…)",
        f"  {'':<16}{'precision':>9}{'recall':>9}{'F1':>9}{'kappa':>9}{'tp':>6}{'fp':>6}{'fn':>6}{'tn':>6}",
        _row("is_lead", q.is_lead),
        _row("visita_agendada", q.visita_agendada),
        f"  probabilidade_conversao MAE {_figure(q.probabilidade_mae, 0)}   nome exact match "
        f"{'—' if q.nome_exact is None else f'{q.nome_exact:.1%}'}",
        "  no API calls: free" if report.analyzer == "regex" else
        f"  tokens: {u.prompt_tokens} prompt ({u.cached_tokens} cached), {u.completion_tokens} completion in {u.calls} call(s); "
        f"per conversation {report.per_conversation(u.prompt_tokens):.0f} prompt, {report.per_conversation(u.cached_tokens):.0f} cached, "
        f"US$ {report.per_conversation(u.cost_usd):.6f} (total US$ {u.cost_usd:.4f}"
        f"{'' if report.priced else ', model without a price: cost not counted'})",
    ]
    if report.failed:
        lines.append(f"  {len(report.failed)} conversation(s) got no answer (left out of the figures): "
                     + ", ".join(report.failed[:5]))
    if report.worst:
        lines.append("worst misses:")
        for miss in report.worst:
            lines.append(f"  {miss.id}: expected {_answer(miss.expected)} | got {_answer(miss.answered)}")
            if miss.note:
                lines.append(f"      ({miss.note})")
    return "\n".join(lines)
