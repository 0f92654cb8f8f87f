"""A real deployment for the tests (and the daemon benchmark): ``dagster-daemon`` and, when asked,
``dagster-webserver`` on a DAGSTER_HOME, throwaway PostgreSQL databases, and the calling process's
environment pointed at the same Dagster instance — started and stopped the same way everywhere."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
import venv
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url




# What dagster.yaml's PostgreSQL storage reads (see its comment on why these are fields, not a URL).
DAGSTER_STORAGE_VARIABLES = ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB")


def dagster_storage_env(url: str) -> dict[str, str]:
    """The ``DAGSTER_PG_*`` variables for Dagster's own storage, from one ``postgresql://`` URL."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "postgresql" or not parsed.database:
        raise ValueError("Dagster's storage needs a postgresql://user:password@host:5432/database URL")
    values = (parsed.host or "localhost", str(parsed.port or 5432), parsed.username or "", parsed.password or "",
              parsed.database)
    return dict(zip(DAGSTER_STORAGE_VARIABLES, values))


def _repo_root() -> Path:
    """The allpfit-etl checkout the tests and benchmarks run from: the nearest folder that holds
    the repo's ``dagster.yaml`` and ``workspace.yaml``, from the working directory up, else from
    the running script's folder up (a benchmark run from elsewhere, as ``cd /tmp && python
    ~/allpfit-etl/bench/bench_live.py``). The working directory when there is none: what needs
    the repo's files then says which one is missing."""
    script = Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] else Path.cwd()
    for start in (Path.cwd(), script):
        for folder in (start, *start.parents):
            if (folder / "dagster.yaml").is_file() and (folder / "workspace.yaml").is_file():
                return folder
    return Path.cwd()


REPO = _repo_root()


def wait_for(predicate, timeout: float, what: str, interval: float = 1.0):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_up(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=2).ok
    except requests.RequestException:
        return False


def descendants(root: int) -> list[int]:
    """Every process below ``root`` (children, their children…)."""
    try:
        return [child.pid for child in psutil.Process(root).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def stop_processes(pids: list[int], timeout: float = 30) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after ``timeout`` seconds."""
    processes = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            processes.append(psutil.Process(pid))
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.terminate()
    _, alive = psutil.wait_procs(processes, timeout=timeout)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=5)


@contextlib.contextmanager
def postgres_databases(admin: sa.Engine, base_url: str, *labels: str, owner: str | None = None) -> Iterator[dict[str, str]]:
    """Uniquely named databases on ``admin``'s server, dropped on exit; yields their URLs by label,
    built on ``base_url`` (whose user and password they carry)."""
    names = {label: f"allpfit_test_{label}_{uuid.uuid4().hex[:8]}" for label in labels}
    try:
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'CREATE DATABASE "{name}"' + (f" OWNER {owner}" if owner else "")))
        url = make_url(base_url)
        yield {label: url.set(database=name).render_as_string(hide_password=False) for label, name in names.items()}
    finally:
        from allpfit_etl.db import dispose_engines

        dispose_engines()
        with admin.connect() as conn:
            for name in names.values():
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def install_wheel(root: Path) -> Path:
    """``pip wheel .`` then ``pip install <wheel>`` into a new venv under ``root`` (what a user, or the
    container image, installs: the package, not the checkout); returns the venv's bin folder."""
    wheel_dir = root / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheel_dir), str(REPO)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    (wheel,) = wheel_dir.glob("allpfit_etl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "allpfit_etl/sql/analytics/migrations/001_initial.postgresql.sql" in names
    assert "allpfit_etl/analysis/prompts/lead_analysis_v1.md" in names
    assert not [n for n in names if n.startswith(("allpfit_etl_tests/", "fake_openai/", "allpfit_devtools/"))]
    assert not [n for n in names if "fake_openai" in n]  # the fake server is a dev tool of its own

    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    bin_dir = env_dir / "bin"
    result = subprocess.run(
        # --no-compile: byte-compiling all of site-packages is 40 % of the install's CPU, and the
        # modules the commands import are compiled (and cached) when first imported anyway.
        [str(bin_dir / "python"), "-m", "pip", "install", "-q", "--no-compile", str(wheel)],
        capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return bin_dir


def user_env(home: Path, bin_dir: Path, **extra: str) -> dict[str, str]:
    """A user's shell with ``bin_dir`` (an installed venv) first on PATH: none of this process's project,
    Dagster or Python settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ALLPFIT_", "CHATWOOT_", "ANALYTICS_", "DAGSTER_", "OPENAI_", "PYTHON"))}
    env.update(ALLPFIT_HOME=str(home), PATH=f"{bin_dir}{os.pathsep}{env['PATH']}", **extra)
    return env


def production_home(parent: Path) -> Path:
    """A DAGSTER_HOME holding this repo's dagster.yaml (its storage comes from DAGSTER_PG_* variables)."""
    home = parent / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    return home


@contextlib.contextmanager
def instance_environment(env: Mapping[str, str]) -> Iterator[None]:
    """This process's DAGSTER_HOME and Dagster storage variables set from ``env`` (so that
    ``DagsterInstance.get()`` opens the deployment's instance), restored on exit."""
    keys = ("DAGSTER_HOME", *DAGSTER_STORAGE_VARIABLES)
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({k: env[k] for k in keys if k in env})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass
class DagsterProcesses:
    logs: dict[str, Path]
    port: int | None = None
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self):
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.port)

    def log_text(self, name: str) -> str:
        return self.logs[name].read_text(errors="replace")

    def wait_until_up(self, timeout: float = 120) -> None:
        wait_for(lambda: server_up(self.port), timeout, "dagster-webserver to answer", 0.5)


@contextlib.contextmanager
def dagster_processes(env: Mapping[str, str], log_dir: Path, *, webserver: bool = True, wait: bool = True,
                      cwd: Path = REPO, workspace: str = "workspace.yaml") -> Iterator[DagsterProcesses]:
    """``dagster-daemon`` (and ``dagster-webserver`` on a free port, waited for unless ``wait`` is
    false: then call ``wait_until_up``) with ``env``; their output goes to ``log_dir/daemon.log`` and
    ``log_dir/webserver.log``. On exit both are stopped, then the code servers they started (which
    outlive them: code servers, run workers and steps still running), while the instance's storage
    still exists."""
    names = ("daemon", "webserver") if webserver else ("daemon",)
    result = DagsterProcesses(logs={name: log_dir / f"{name}.log" for name in names})
    files = {name: open(path, "w") for name, path in result.logs.items()}
    commands = {"daemon": ["dagster-daemon", "run", "-w", workspace]}
    if webserver:
        result.port = free_port()
        commands["webserver"] = ["dagster-webserver", "-h", "127.0.0.1", "-p", str(result.port), "-w", workspace]
    try:
        for name, command in commands.items():
            result.processes[name] = subprocess.Popen(command, cwd=cwd, env=dict(env), stdout=files[name],
                                                      stderr=subprocess.STDOUT)
        if webserver and wait:
            result.wait_until_up()
        yield result
    finally:
        # What they started outlives them: code servers, run workers and their step processes.
        started = [pid for process in result.processes.values() for pid in descendants(process.pid)]
        for process in result.processes.values():
            process.terminate()
        for process in result.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        stop_processes(started, timeout=10)
        for f in files.values():
            f.close()


@dataclass
class Deployment:
    """A production-shaped deployment: the repo's dagster.yaml on PostgreSQL, the pipeline's databases."""
    urls: dict[str, str]
    env: dict[str, str]
    home: Path
    instance: object  # dagster.DagsterInstance (imported where a deployment starts: allpfit-etl brings it)
    processes: DagsterProcesses | None

    @property
    def port(self) -> int | None:
        return self.processes.port if self.processes else None

    def client(self):
        return self.processes.client()


@contextlib.contextmanager
def production_deployment(urls: Mapping[str, str], tmp: Path, env: Mapping[str, str], *, daemon: bool = True,
                          webserver: bool = True, wait: bool = True) -> Iterator[Deployment]:
    """The one way tests and benchmarks stand a deployment up: a DAGSTER_HOME under ``tmp`` holding
    the repo's dagster.yaml, Dagster's storage in ``urls["dagster"]``, the pipeline pointed at
    ``urls["chatwoot"]`` and ``urls["analytics"]`` (``env`` adds the rest: OpenAI, alerts, sensor
    intervals…); ``dagster-daemon`` and ``dagster-webserver`` started as in ``dagster_processes``
    unless ``daemon`` is false; this process's ``DagsterInstance.get()`` the deployment's. On exit,
    the instance is closed, then the processes and whatever they started are stopped."""
    import dagster as dg

    home = production_home(tmp)
    full_env = {**env, "DAGSTER_HOME": str(home), **dagster_storage_env(urls["dagster"]),
                "CHATWOOT_DATABASE_URL": urls["chatwoot"], "ANALYTICS_DATABASE_URL": urls["analytics"]}
    with contextlib.ExitStack() as stack:
        processes = stack.enter_context(dagster_processes(full_env, tmp, webserver=webserver, wait=wait)) if daemon else None
        stack.enter_context(instance_environment(full_env))
        instance = dg.DagsterInstance.get()
        stack.callback(instance.dispose)
        yield Deployment(dict(urls), full_env, home, instance, processes)


def sensor_ticks_since(instance, sensor_name: str, since: float) -> int:
    """Ticks of ``sensor_name`` that started after ``since`` (a Unix timestamp) and have ended:
    waiting for a few of them is waiting for the daemon to have looked again, not for time to pass."""
    for state in instance.all_instigator_state():
        if state.instigator_name == sensor_name:
            ticks = instance.get_ticks(state.instigator_origin_id, state.selector_id, after=since)
            return sum(1 for tick in ticks if tick.status.value != "STARTED")
    return 0
