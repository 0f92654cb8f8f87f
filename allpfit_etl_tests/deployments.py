"""A real ``dagster-daemon`` on the SQLite demo home (the embedded defaults a user starts with):
Dagster's own SQLite storage, SQLite Chatwoot and analytics databases seeded by ``seed-demo``.
The production-shaped deployment (PostgreSQL, the repo's dagster.yaml) is
``allpfit_devtools.deployment.production_deployment``."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import dagster as dg

from allpfit_devtools.deployment import REPO, dagster_processes

PIPELINE_VARIABLES = ("CHATWOOT_DATABASE_URL", "ANALYTICS_DATABASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL",
                      "ALERT_WEBHOOK_URL")


@contextlib.contextmanager
def demo_home_daemon(tmp_path: Path, monkeypatch, instance_yaml: str, tenants, sensor_interval: int) -> Iterator[dg.DagsterInstance]:
    """``tmp_path`` as ALLPFIT_HOME with the demo's Chatwoot data, ``tenants`` (demo tenants) added,
    a DAGSTER_HOME holding ``instance_yaml``, and ``dagster-daemon`` running on it (its log in
    ``tmp_path/daemon.log``); yields this process's view of that instance."""
    from allpfit_etl.cli.main import main

    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml)
    for name in PIPELINE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("ALLPFIT_HOME", str(tmp_path))
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ALLPFIT_ACTIVITY_SENSOR_INTERVAL", str(sensor_interval))
    # The demo home without the demo's two-week run (the sensors need the tenants and both databases).
    assert main(["seed-demo"]) == 0 and main(["init"]) == 0
    for tenant in tenants:
        assert main(["tenants", "add", tenant.slug, "--name", tenant.name, "--account-id", str(tenant.account_id)]) == 0
    with dagster_processes(os.environ, tmp_path, webserver=False, cwd=tmp_path, workspace=str(REPO / "workspace.yaml")):
        yield dg.DagsterInstance.get()
