"""Imports flow one way (entry points → Dagster wrappers → plain logic → foundations), as the
contracts in pyproject's ``[tool.importlinter]`` say; import-linter checks them."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    lint = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(lint), "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Contracts: 4 kept, 0 broken." in result.stdout


def test_loading_the_code_location_leaves_the_openai_sdk_unimported():
    """A third of a definitions load was the SDK (bench/bench_definitions_load.py); the processes
    that never send a request (CLI commands, code servers, sensors, regex runs) skip it."""
    probe = ("import sys, allpfit_etl.definitions, allpfit_etl.cli.main, allpfit_etl.runner; "
             "print(sorted(m for m in ('openai', 'aiohttp') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-W", "ignore", "-c", probe], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"
