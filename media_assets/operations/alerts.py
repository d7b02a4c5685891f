"""Alerts: what went wrong, recorded in the audit log and (when an operator configured one)
posted to a webhook as a Slack-compatible JSON body. Sending never raises: an unreachable
webhook is logged and retried a few times, and must not stop the pipeline. Pure, no Dagster."""

from __future__ import annotations

import json
import logging
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from tenacity import Retrying, stop_after_attempt, wait_exponential_jitter

from media_assets.records.audit import append, audit_record

log = logging.getLogger(__name__)

COLOURS = {"error": "#d93f0b", "warning": "#fbca04", "resolved": "#0e8a16"}


@dataclass(frozen=True)
class Alert:
    """One alert. `source` names what raised it: breaker:LANE, disk_guard, freshness,
    run_failure, check:NAME, budget:FOLDER."""

    source: str
    message: str
    severity: str = "error"  # error | warning | resolved
    details: dict[str, Any] = field(default_factory=dict)


class Notifier(Protocol):
    def send(self, alert: Alert) -> bool: ...


def webhook_body(alert: Alert) -> dict[str, Any]:
    """Slack's incoming-webhook format (`text` + an attachment with fields); generic receivers
    find the same facts under `media_assets`."""
    title = f"[media_assets] {alert.severity.upper()} {alert.source}"
    return {
        "text": f"{title}: {alert.message}",
        "attachments": [{
            "color": COLOURS.get(alert.severity, COLOURS["error"]),
            "title": title,
            "text": alert.message,
            "fields": [{"title": k, "value": str(v), "short": True}
                       for k, v in sorted(alert.details.items())],
        }],
        "media_assets": {"source": alert.source, "severity": alert.severity,
                         "message": alert.message, "details": alert.details},
    }


class WebhookNotifier:
    """POSTs each alert as JSON; a few attempts with jittered backoff, then gives up."""

    def __init__(self, url: str, timeout: float = 5.0, attempts: int = 3,
                 max_wait: float = 2.0) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"the alert webhook must be an http(s) URL, not {url[:40]!r}")
        self.url, self.timeout = url, timeout
        self._retrying = Retrying(stop=stop_after_attempt(attempts), reraise=True,
                                  wait=wait_exponential_jitter(initial=0.2, max=max_wait))

    def send(self, alert: Alert) -> bool:
        body = json.dumps(webhook_body(alert), default=str).encode()
        request = urllib.request.Request(self.url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            for attempt in self._retrying:
                with attempt, urllib.request.urlopen(request, timeout=self.timeout) as reply:
                    reply.read()
        except Exception as exc:  # noqa: BLE001 - alerting must never break the pipeline
            log.warning("alert webhook failed (%s): %s", alert.source, exc)
            return False
        return True


def raise_alert(store: Any, alert: Alert, notifier: Notifier | None, *, actor: str,
                run_id: str | None = None, now: datetime | None = None) -> bool:
    """Record the alert in the audit log (action `alert`, or `alert_cleared` when resolved)
    and send it; True when a webhook took it."""
    action = "alert_cleared" if alert.severity == "resolved" else "alert"
    append(store, [audit_record(action, "-", source=alert.source, reason=alert.message,
                                actor=actor, run_id=run_id, now=now)])
    return notifier.send(alert) if notifier else False
