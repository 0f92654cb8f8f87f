"""CPU of a process that loads the code location, and what the openai SDK adds to it.

    python bench/bench_definitions_load.py [--runs 7]

Every CLI command, code server, run worker and step process starts by importing
``allpfit_etl.definitions``. Prints the median CPU seconds (user + system, from the child's
rusage) of a fresh Python process that imports it, the same with ``import openai`` added
(what every such process paid while the SDK was imported at module level), and a bare
``import dagster`` for scale; and whether loading the definitions imported the SDK.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys

CASES = {
    "import dagster": "import dagster",
    "load the definitions": "import allpfit_etl.definitions",
    "load the definitions + import openai": "import allpfit_etl.definitions, openai",
}


def cpu_of(code: str) -> float:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    runs = parser.parse_args().runs
    cpu_of("import allpfit_etl.definitions, openai")  # warm the page cache and the bytecode
    for name, code in CASES.items():
        samples = [cpu_of(code) for _ in range(runs)]
        print(f"{name:40s} median {statistics.median(samples):.2f} CPU-s  "
              f"(min {min(samples):.2f}, max {max(samples):.2f}, {runs} runs)")
    probe = subprocess.run([sys.executable, "-W", "ignore", "-c",
                            "import sys, allpfit_etl.definitions; print('openai' in sys.modules)"],
                           check=True, capture_output=True, text=True)
    print(f"loading the definitions imports openai: {probe.stdout.strip()}")


if __name__ == "__main__":
    main()
