"""Helpers the tests and the benchmarks share: throwaway databases, a real Dagster deployment
(daemon and webserver) and the fake OpenAI server in a process of its own."""
