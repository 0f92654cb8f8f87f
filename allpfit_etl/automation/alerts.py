"""Run-failure alerts: a JSON message to ``ALERT_WEBHOOK_URL`` when set, a log line otherwise.
The URL is a secret (it usually embeds a token): it is never logged."""

import json
import urllib.error
import urllib.request

import dagster as dg

from allpfit_etl.errors import AllpfitError, redact, root_cause_line
from allpfit_etl.partitions import PARTITION_TAG, RANGE_END_TAG, RANGE_START_TAG, TENANT_TAG, parse_partition_key


class AlertWebhook(dg.ConfigurableResource):
    url: str | None = None
    timeout_s: float = 10.0

    def post(self, payload: dict) -> str:
        """Send ``payload``; returns a short outcome that is safe to log."""
        if not self.url:
            return "no webhook configured"
        request = urllib.request.Request(
            self.url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return f"webhook answered HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            return f"webhook answered HTTP {exc.code}"
        except (urllib.error.URLError, OSError) as exc:
            return f"webhook unreachable ({type(exc).__name__})"


def _tenant_of(tags: dict) -> str | None:
    """The tenant slug of a single-partition or partition-range run, from its partition key."""
    key = tags.get(PARTITION_TAG) or tags.get(RANGE_START_TAG)
    if not key:
        return None
    try:
        return parse_partition_key(key)[1]
    except AllpfitError:
        return None


def failure_payload(context: dg.RunFailureSensorContext) -> dict:
    run = context.dagster_run
    tags = run.tags or {}
    partition = tags.get(PARTITION_TAG) or (
        f"{tags[RANGE_START_TAG]}…{tags[RANGE_END_TAG]}"
        if RANGE_START_TAG in tags
        else None
    )
    error = context.failure_event.message if context.failure_event else "run failed"
    step_errors = [root_cause_line(e.event_specific_data.error) for e in context.get_step_failure_events()
                   if e.event_specific_data and e.event_specific_data.error]
    return {
        "run_id": run.run_id,
        "job": run.job_name,
        "partition": partition,
        "tenant": tags.get(TENANT_TAG) or _tenant_of(tags),
        "error": redact(step_errors[0] if step_errors else error),
    }


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, minimum_interval_seconds=30)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook):
    """Posts every failed run of this code location to the alert webhook."""
    payload = failure_payload(context)
    outcome = alert_webhook.post(payload)
    context.log.info(f"run {payload['run_id']} failed ({payload['tenant']}): {outcome}")
