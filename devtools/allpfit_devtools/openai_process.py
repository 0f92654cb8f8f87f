"""The bundled fake OpenAI server in a process of its own, as a real endpoint would be (the
client's CPU is then the pipeline's alone), and the environment a user points at it."""

from __future__ import annotations

import subprocess
import sys

import requests

from allpfit_devtools.bench import cli_env

API_KEY = "sk-bench"


class ServerProcess:
    """The bundled server in its own process, as a real endpoint would be: the client's CPU is
    the pipeline's alone."""

    def __init__(self, *args: str):
        self.process = subprocess.Popen([sys.executable, "-m", "fake_openai", "--port", "0", *args],
                                        stdout=subprocess.PIPE, text=True)
        self.base_url = self.process.stdout.readline().strip().removeprefix("listening on ")
        self.root = self.base_url.removesuffix("/v1")

    def stats(self) -> dict:
        return requests.get(f"{self.root}/_stats", timeout=10).json()

    def configure(self, **changes) -> None:
        requests.post(f"{self.root}/_config", json=changes, timeout=10).raise_for_status()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def user_environment(chatwoot_url: str, analytics_url: str, base_url: str, home: str) -> dict:
    """What a user exports: the two databases, the key and the endpoint. Nothing else."""
    return cli_env(home, CHATWOOT_DATABASE_URL=chatwoot_url, ANALYTICS_DATABASE_URL=analytics_url,
                   OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=base_url)
