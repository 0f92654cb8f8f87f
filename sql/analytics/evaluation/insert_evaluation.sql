INSERT INTO prompt_evaluations (
    evaluated_at, set_name, set_fingerprint, analyzer, model, prompt_version, endpoint, conversations, answered,
    is_lead_tp, is_lead_fp, is_lead_fn, is_lead_tn, is_lead_precision, is_lead_recall, is_lead_f1, is_lead_kappa,
    visita_tp, visita_fp, visita_fn, visita_tn, visita_precision, visita_recall, visita_f1, visita_kappa,
    probabilidade_mae, nome_exact, calls, prompt_tokens, cached_tokens, completion_tokens, cost_usd)
VALUES (
    :evaluated_at, :set_name, :set_fingerprint, :analyzer, :model, :prompt_version, :endpoint, :conversations, :answered,
    :is_lead_tp, :is_lead_fp, :is_lead_fn, :is_lead_tn, :is_lead_precision, :is_lead_recall, :is_lead_f1, :is_lead_kappa,
    :visita_tp, :visita_fp, :visita_fn, :visita_tn, :visita_precision, :visita_recall, :visita_f1, :visita_kappa,
    :probabilidade_mae, :nome_exact, :calls, :prompt_tokens, :cached_tokens, :completion_tokens, :cost_usd)
RETURNING evaluation_id
