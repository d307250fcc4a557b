"""`/metrics` scraped and parsed by prometheus_client's own parser, and `/v1/ready` against a really locked store."""

from __future__ import annotations

import sqlite3

import httpx
from cloud.served import Served, audit, batch_body, workflow
from prometheus_client.parser import text_string_to_metric_families
from sync.harness import free_port


def scrape(url: str) -> dict[tuple[str, tuple], float]:
    """Every sample of a scrape, keyed by (sample name, sorted labels)."""
    r = httpx.get(url + "/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith(
        "text/plain; version=0.0.4"
    )
    samples = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def test_metrics_count_what_the_receiver_did(tmp_path):
    """Stored and refused batches, records by kind and reason, conflicts, latency and per-device gauges add up."""
    with Served(tmp_path) as rx:
        wf = workflow()
        batch_id, body = batch_body("pos-1", [wf, workflow(state={"note": "\ud800"})], [audit(wf["id"])],
                                    agent={"backlog": 4, "quarantined": 2, "oldest_pending_age_s": 9.5})  # fmt: skip
        assert rx.post(body, batch_id).status_code == 200
        assert (
            rx.send([{**wf, "state": {"amount": 6}}]).status_code == 200
        )  # same key, other content
        assert rx.send([workflow()], secret="0" * 64).status_code == 401
        assert rx.send([workflow()], key_id="rk_nobody").status_code == 401
        m = scrape(rx.url)
    g = lambda name, **labels: m[(name, tuple(sorted(labels.items())))]  # noqa: E731
    assert g("ruvon_cloud_batches_total", result="stored") == 2
    assert g("ruvon_cloud_batches_total", result="unauthenticated") == 2
    assert g("ruvon_cloud_records_stored_total", kind="workflow") == 1
    assert g("ruvon_cloud_records_stored_total", kind="audit") == 1
    assert g("ruvon_cloud_records_rejected_total", kind="workflow", reason="lone_surrogate") == 1
    assert g("ruvon_cloud_workflow_conflicts_total") == 1
    assert g("ruvon_cloud_auth_refusals_total", reason="bad_signature") == 1
    assert g("ruvon_cloud_auth_refusals_total", reason="unknown_key") == 1
    assert g("ruvon_cloud_request_duration_seconds_count", route="batches") == 4
    assert g("ruvon_cloud_store_commit_duration_seconds_count") == 2
    assert g("ruvon_cloud_device_backlog", device_id="pos-1") == 4
    assert g("ruvon_cloud_device_quarantined", device_id="pos-1") == 2
    assert g("ruvon_cloud_device_oldest_pending_age_seconds", device_id="pos-1") == 9.5
    assert g("ruvon_cloud_device_workflows_stored", device_id="pos-1") == 1
    assert g("ruvon_cloud_store_up") == 1
    with sqlite3.connect(tmp_path / "cloud.db") as conn:
        [(last_seen,)] = conn.execute("SELECT last_seen_at FROM devices WHERE device_id = 'pos-1'")
    assert g("ruvon_cloud_device_last_seen_timestamp_seconds", device_id="pos-1") == last_seen


def test_metrics_can_move_to_another_address_or_be_turned_off(tmp_path):
    """--metrics-listen serves /metrics there and not on the API; --no-metrics serves it nowhere."""
    port = free_port()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with Served(tmp_path / "a", "--metrics-listen", f"127.0.0.1:{port}") as rx:
        assert httpx.get(rx.url + "/metrics").status_code == 404
        assert ("ruvon_cloud_store_up", ()) in scrape(f"http://127.0.0.1:{port}")
    with Served(tmp_path / "b", "--no-metrics") as rx:
        assert httpx.get(rx.url + "/metrics").status_code == 404
        assert httpx.get(rx.url + "/v1/health").status_code == 200


def test_a_locked_store_is_not_ready_and_batches_get_503_with_retry_after(tmp_path):
    """While another process holds the store's write lock, ready is 503 and a batch is 503 + Retry-After, logged as one JSON line."""
    with Served(tmp_path) as rx:
        assert httpx.get(rx.url + "/v1/ready").status_code == 200
        holder = sqlite3.connect(tmp_path / "cloud.db", isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        try:
            ready = httpx.get(rx.url + "/v1/ready", timeout=60)
            assert ready.status_code == 503 and "not ready" in ready.json()["error"]
            refused = rx.send([workflow()])
            assert refused.status_code == 503 and int(refused.headers["retry-after"]) > 0
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert httpx.get(rx.url + "/v1/ready").status_code == 200
        assert rx.send([workflow()]).status_code == 200
    failures = [line for line in rx.logs() if line["event"] == "store_unavailable"]
    assert failures and "locked" in failures[0]["error"] and failures[0]["level"] == "error"
