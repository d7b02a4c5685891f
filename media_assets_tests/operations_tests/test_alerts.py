"""Alerts go to the audit log and, when configured, to a webhook as Slack-compatible JSON."""

import pytest

from media_assets.operations.alerts import Alert, WebhookNotifier, raise_alert, webhook_body
from media_assets.records.audit import read_audit
from media_assets.storage import LocalObjectStore
from media_assets_tests.webhook import webhook_receiver


def test_the_body_is_slack_compatible_and_carries_the_facts():
    body = webhook_body(Alert("disk_guard", "2 GiB free", details={"lane": "image"}))
    assert body["text"] == "[media_assets] ERROR disk_guard: 2 GiB free"
    [attachment] = body["attachments"]
    assert attachment["fields"] == [{"title": "lane", "value": "image", "short": True}]
    assert body["media_assets"] == {"source": "disk_guard", "severity": "error",
                                    "message": "2 GiB free", "details": {"lane": "image"}}


def test_an_alert_is_posted_to_a_real_http_receiver():
    with webhook_receiver() as receiver:
        assert WebhookNotifier(receiver.url).send(Alert("freshness", "late"))
    assert receiver.sources() == ["freshness"]


def test_a_flaky_receiver_is_retried():
    with webhook_receiver() as receiver:
        receiver.fail_next = 2
        assert WebhookNotifier(receiver.url, max_wait=0.05).send(Alert("freshness", "late"))
    assert len(receiver.bodies) == 1


def test_an_unreachable_webhook_never_raises():
    with webhook_receiver() as receiver:
        url = receiver.url
    notifier = WebhookNotifier(url, timeout=0.5, max_wait=0.05)
    assert notifier.send(Alert("freshness", "late")) is False


def test_only_http_urls_are_accepted():
    with pytest.raises(ValueError, match="http"):
        WebhookNotifier("file:///etc/passwd")


def test_raising_an_alert_records_it_even_without_a_webhook(tmp_path):
    store = LocalObjectStore(tmp_path)
    assert raise_alert(store, Alert("breaker:av", "5 files in a row failed"), None,
                       actor="inbox_sensor") is False
    raise_alert(store, Alert("breaker:av", "closed", severity="resolved"), None,
                actor="inbox_sensor")
    audit = read_audit(store)
    assert audit["action"].to_list() == ["alert", "alert_cleared"]
    assert audit["from"].to_list() == ["breaker:av", "breaker:av"]


def test_a_crash_that_passes_alone_counts_against_the_machine_and_a_poison_file_does_not():
    from media_assets.operations.breaker import NONDETERMINISTIC, breaker_reason

    assert breaker_reason("ok", None, None) is None
    assert breaker_reason("ok", None, "worker_crashed") in NONDETERMINISTIC
    assert breaker_reason("quarantined", "worker_crashed", None) in NONDETERMINISTIC
    assert breaker_reason("quarantined", "worker_crashed", "worker_crashed") \
        not in NONDETERMINISTIC  # it crashed alone again: the file's doing
    assert breaker_reason("quarantined", "corrupt", None) not in NONDETERMINISTIC
