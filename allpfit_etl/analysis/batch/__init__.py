"""OpenAI Batch API mode: half-price backfills, submitted and paid exactly once.

``requests`` builds the JSONL lines and files (pure), ``results`` reads output and error lines
(pure), ``store`` keeps ``llm_batches`` and the in-batch reservations, ``submit`` and ``ingest``
talk to the API, ``mode`` decides when a run uses it.
"""
