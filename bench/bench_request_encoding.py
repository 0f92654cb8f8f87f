"""The client's CPU per request: the typed openai API against the raw body the analyser sends.

    python bench/bench_request_encoding.py [--requests 2000] [--concurrency 64]

Sends the same chat completions (the real prompt, a real transcript, the answer schema) to the
bundled fake server in a process of its own, once through ``chat.completions.parse`` with typed
messages and ``response_format=LeadAnswer`` (what openai-python's docs show), once as the analyser
sends them (``with_raw_response.create`` with the body in ``extra_body``, the answer read with
``json.loads`` and validated by the same pydantic model). Prints this process's CPU seconds per
1,000 requests for each (the server's CPU is not counted) and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import openai
from allpfit_devtools.openai_process import API_KEY, ServerProcess

from allpfit_etl.analysis.structured_output import LeadAnswer, response_format
from allpfit_etl.analysis.prompts import system_prompt

TRANSCRIPT = "\n".join([
    "contato: Oi, boa tarde! Qual o valor da mensalidade?",
    "bot: Olá! Nosso plano mensal custa R$ 99,90 e o anual R$ 89,90 por mês.",
    "contato: Vocês abrem sábado? Queria fazer uma aula experimental",
    "agente: Abrimos sim, das 8h às 14h. Posso agendar para sábado às 10h?",
    "contato: Pode sim, meu nome é Juliana Souza",
] * 3)


def messages(i: int) -> list[dict]:
    return [{"role": "system", "content": system_prompt()}, {"role": "user", "content": f"{TRANSCRIPT}\n#{i}"}]


async def typed(client: openai.AsyncOpenAI, i: int) -> LeadAnswer:
    completion = await client.chat.completions.parse(model="gpt-4o-mini", messages=messages(i), response_format=LeadAnswer)
    return completion.choices[0].message.parsed


async def raw(client: openai.AsyncOpenAI, i: int) -> LeadAnswer:
    response = await client.chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[], extra_body={"messages": messages(i), "response_format": response_format()})
    body = json.loads(response.text)
    return LeadAnswer.model_validate_json(body["choices"][0]["message"]["content"])


async def run(send, base_url: str, requests: int, concurrency: int) -> float:
    client = openai.AsyncOpenAI(api_key=API_KEY, base_url=base_url, max_retries=0, http_client=openai.DefaultAioHttpClient())
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await send(client, i)

    await asyncio.gather(*(one(i) for i in range(50)))  # warm-up: connections, imports, schema caches
    started = time.process_time()
    await asyncio.gather(*(one(i) for i in range(requests)))
    cpu = time.process_time() - started
    await client.close()
    return cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    with ServerProcess() as server:
        figures = {name: asyncio.run(run(send, server.base_url, args.requests, args.concurrency))
                   for name, send in (("typed parse()", typed), ("raw body (the analyser's)", raw))}
    per_k = {name: cpu / args.requests * 1000 for name, cpu in figures.items()}
    for name, seconds in per_k.items():
        print(f"{name:<28} {seconds:6.2f} CPU-s per 1,000 requests")
    typed_s, raw_s = per_k.values()
    print(f"the raw body saves {1 - raw_s / typed_s:.0%} of the client's CPU per request")


if __name__ == "__main__":
    main()
