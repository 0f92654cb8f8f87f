-- Average tokens of a tenant's stored OpenAI answers for a model (the shadow sample's cost per conversation).
SELECT COUNT(*) AS answers, AVG(prompt_tokens) AS prompt_tokens, AVG(cached_tokens) AS cached_tokens,
       AVG(completion_tokens) AS completion_tokens
FROM conversation_analyses
WHERE tenant_id = :tenant_id AND analyzer = 'openai' AND model = :model
