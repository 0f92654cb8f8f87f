"""Monitoring: regex vs OpenAI agreement, LLM spend against budgets, and the HTML dashboard."""
