"""``python -m fake_openai --port 8000 --latency 3 --latency-jitter 1 --rpm 3000``

``--llama-cpp`` plays llama-cpp-python's server: a ``json_schema`` response format gets HTTP 500,
``json_object`` with a ``schema`` and tool calls are answered."""

import argparse
import signal
import threading

from fake_openai.server import FakeOpenAIServer, FakeServerConfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="fake-openai", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--latency-jitter", type=float, default=0.0)
    parser.add_argument("--rpm", type=int, default=0)
    parser.add_argument("--tpm", type=int, default=0)
    for fault in ("429", "500", "hang", "truncated", "nul"):
        parser.add_argument(f"--p-{fault}", type=float, default=0.0, dest=f"p_{fault}")
    parser.add_argument("--hang-seconds", type=float, default=120.0)
    parser.add_argument("--fault-seed", type=int, default=0)
    parser.add_argument("--api-key", action="append", default=[], help="accept only these keys (repeatable)")
    parser.add_argument("--model", action="append", default=[], help="serve only these models (repeatable)")
    parser.add_argument("--quota-calls", type=int, help="billed calls before 429 insufficient_quota")
    parser.add_argument("--llama-cpp", action="store_true",
                        help="answer as llama-cpp-python's server: json_schema refused (HTTP 500), json_object/tools taken")
    args = parser.parse_args()
    config = FakeServerConfig(
        latency_s=args.latency, latency_jitter_s=args.latency_jitter, rpm=args.rpm, tpm=args.tpm,
        p_429=args.p_429, p_500=args.p_500, p_hang=args.p_hang, hang_s=args.hang_seconds,
        p_truncated=args.p_truncated, p_nul=args.p_nul, fault_seed=args.fault_seed,
        api_keys=tuple(args.api_key), models=tuple(args.model), quota_calls=args.quota_calls,
        llama_cpp=args.llama_cpp,
    )
    server = FakeOpenAIServer(config, host=args.host, port=args.port).start()
    print(f"listening on {server.base_url}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
