"""`ruvon-cloud` as an operator runs it: set-up that cannot go wrong, keys, devices, workflows, show."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

from cloud.served import Served, audit, cloud_cli, workflow

from ruvon_cloud.auth import KeyRing


def test_add_device_prints_key_once_and_stores_no_secret(tmp_path):
    """add-device --json prints device, key id and secret; the database holds no copy of the secret; the master key is 0600."""
    store = f"sqlite:///{tmp_path / 'cloud.db'}"
    out = cloud_cli("add-device", "pos-1", "--store", store, "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"device_id", "key_id", "secret"} and doc["device_id"] == "pos-1"
    dump = "\n".join(sqlite3.connect(tmp_path / "cloud.db").iterdump())
    assert doc["key_id"] in dump and doc["secret"] not in dump
    assert os.stat(tmp_path / "cloud.db.master-key").st_mode & 0o777 == 0o600
    assert (
        "created a new master key" in out.stderr
        and str(tmp_path / "cloud.db.master-key") in out.stderr
    )


def test_bad_usage_exits_2_with_one_line(tmp_path):
    """A missing or unsupported store, an unknown verb or an invalid device id is exit 2 with one line, no usage dump."""
    env = {k: v for k, v in os.environ.items() if k != "RUVON_CLOUD_STORE"}
    cases = [
        (("add-device", "pos-1", "--store", "mysql://x"), "unsupported store URL"),
        (("bogus",), "invalid choice"),
        (("add-device", "pos 1", "--store", f"sqlite:///{tmp_path / 'c.db'}"), "invalid device id"),
        (
            ("add-device", "x" * 129, "--store", f"sqlite:///{tmp_path / 'c.db'}"),
            "invalid device id",
        ),
    ]
    for args, message in cases:
        out = cloud_cli(*args)
        assert out.returncode == 2 and message in out.stderr, (args, out.stderr)
        assert len(out.stderr.strip().splitlines()) == 1 and "usage:" not in out.stderr
    out = subprocess.run([sys.executable, "-m", "ruvon_cloud.cli", "add-device", "pos-1"],
                         capture_output=True, text=True, env=env)  # fmt: skip
    assert out.returncode == 2 and "--store is required" in out.stderr
    assert not (tmp_path / "c.db").exists()


def test_store_urls_follow_url_rules_from_any_directory(tmp_path):
    """sqlite:REL is under the working directory, sqlite:///ABS is absolute, and a missing directory is one line naming it."""
    work = tmp_path / "work"
    work.mkdir()
    assert cloud_cli("add-device", "pos-1", "--store", "sqlite:rel.db", cwd=work).returncode == 0
    assert (work / "rel.db").exists() and (work / "rel.db.master-key").exists()
    absolute = f"sqlite:///{str(tmp_path / 'abs.db').lstrip('/')}"
    assert cloud_cli("add-device", "pos-1", "--store", absolute, cwd=work).returncode == 0
    assert (tmp_path / "abs.db").exists() and not (work / str(tmp_path).lstrip("/")).exists()
    missing = cloud_cli(
        "add-device", "pos-1", "--store", "sqlite:///nowhere-ruvon/x/cloud.db", cwd=work
    )
    assert missing.returncode == 2 and missing.stderr.strip() == (
        "ruvon-cloud: error: store directory /nowhere-ruvon/x does not exist (create it first)"
    )


def test_a_different_master_key_is_refused_naming_both_fingerprints(tmp_path):
    """add-device and serve refuse a key the store was not initialised with, and never mint a second key."""
    store = f"sqlite:///{tmp_path / 'cloud.db'}"
    assert cloud_cli("add-device", "pos-1", "--store", store).returncode == 0
    mine = KeyRing.load(tmp_path / "cloud.db.master-key")
    other = tmp_path / "other.key"
    other.write_text(os.urandom(32).hex())
    theirs = KeyRing.load(other)
    for verb in (("add-device", "pos-2"), ("serve", "--port", "1")):
        out = cloud_cli(*verb, "--store", store, "--master-key-file", str(other))
        assert out.returncode == 2 and "--master-key-file" in out.stderr, out.stderr
        assert mine.fingerprint in out.stderr and theirs.fingerprint in out.stderr
    absent = cloud_cli(
        "add-device", "pos-2", "--store", store, "--master-key-file", str(tmp_path / "new.key")
    )
    assert absent.returncode == 2 and mine.fingerprint in absent.stderr
    assert not (tmp_path / "new.key").exists()
    keys = json.loads(cloud_cli("keys", "--store", store, "--json").stdout)
    assert [k["device_id"] for k in keys] == ["pos-1"]


def test_rotate_keeps_both_keys_valid_until_the_old_one_is_revoked(tmp_path):
    """rotate prints a second key; both sign batches until revoke, after which the old one gets 401 and is listed revoked."""
    with Served(tmp_path) as rx:
        rotated = cloud_cli("rotate", "pos-1", "--store", rx.store, "--json", env=rx.env)
        assert rotated.returncode == 0, rotated.stderr
        new = json.loads(rotated.stdout)
        assert new["key_id"] != rx.key_id and set(new) == {"device_id", "key_id", "secret"}
        assert rx.send([workflow()]).status_code == 200
        assert rx.send([workflow()], key_id=new["key_id"], secret=new["secret"]).status_code == 200
        revoked = cloud_cli("revoke", rx.key_id, "--store", rx.store, "--json")
        assert revoked.returncode == 0 and json.loads(revoked.stdout)["revoked_at"].endswith("Z")
        assert rx.send([workflow()]).status_code == 401
        assert rx.send([workflow()], key_id=new["key_id"], secret=new["secret"]).status_code == 200
        keys = {
            k["key_id"]: k
            for k in json.loads(cloud_cli("keys", "pos-1", "--store", rx.store, "--json").stdout)
        }
        assert keys[rx.key_id]["revoked_at"] and keys[new["key_id"]]["revoked_at"] is None
        again = cloud_cli("revoke", rx.key_id, "--store", rx.store)
        assert again.returncode == 2 and "no active key" in again.stderr


def test_devices_workflows_and_show_report_what_was_stored(tmp_path):
    """devices, workflows and show --audit print the contract's JSON shapes with the numbers the receiver stored."""
    with Served(tmp_path) as rx:
        paid, failed = workflow(), workflow(status="FAILED", workflow_type="Refund")
        agent = {"version": "0.2.0", "backlog": 4, "oldest_pending_age_s": 12.5, "quarantined": 1}
        from cloud.served import batch_body

        batch_id, body = batch_body(
            "pos-1", [paid, failed], [audit(paid["id"]), audit(paid["id"])], agent=agent
        )
        assert rx.post(body, batch_id).status_code == 200
        assert rx.send([workflow()], secret="0" * 64).status_code == 401
        [dev] = json.loads(cloud_cli("devices", "--store", rx.store, "--json").stdout)
        assert {"device_id", "first_seen_at", "last_seen_at", "workflows", "audit_logs", "backlog",
                "oldest_pending_age_s", "quarantined", "agent_version", "last_refusal", "stale"} <= set(dev)  # fmt: skip
        assert (dev["workflows"], dev["audit_logs"], dev["backlog"], dev["quarantined"]) == (
            2,
            2,
            4,
            1,
        )
        assert dev["agent_version"] == "0.2.0" and dev["stale"] is False
        assert dev["last_refusal"]["status"] == 401 and dev["last_refusal"]["key_id"] == rx.key_id
        stale = json.loads(
            cloud_cli("devices", "--store", rx.store, "--json", "--stale-after", "0s").stdout
        )
        assert stale[0]["stale"] is True
        text = cloud_cli("devices", "--store", rx.store).stdout
        assert "pos-1" in text and "bad signature" in text
        listed = json.loads(
            cloud_cli("workflows", "--store", rx.store, "--status", "FAILED", "--json").stdout
        )
        assert [(w["id"], w["device_id"], w["workflow_type"]) for w in listed] == [
            (failed["id"], "pos-1", "Refund")
        ]
        assert {k for k in paid} <= set(listed[0])
        recent = cloud_cli(
            "workflows", "--store", rx.store, "--since", "1h", "--device", "pos-1", "--json"
        )
        assert len(json.loads(recent.stdout)) == 2
        assert (
            json.loads(
                cloud_cli(
                    "workflows", "--store", rx.store, "--until", "2000-01-01", "--json"
                ).stdout
            )
            == []
        )
        shown = json.loads(
            cloud_cli("show", paid["id"], "--audit", "--store", rx.store, "--json").stdout
        )
        assert shown["state"] == paid["state"] and len(shown["audit_logs"]) == 2
        assert "audit:" in cloud_cli("show", paid["id"], "--audit", "--store", rx.store).stdout
        bad = cloud_cli("workflows", "--store", rx.store, "--since", "yesterday-ish")
        assert bad.returncode == 2 and "--since" in bad.stderr


def test_version_and_reads_of_a_missing_store(tmp_path):
    """--version prints the version; a read verb on a store that does not exist is exit 2 and creates nothing."""
    out = cloud_cli("--version")
    assert out.returncode == 0 and out.stdout.startswith("ruvon-cloud ")
    missing = cloud_cli("devices", "--store", f"sqlite:///{tmp_path / 'none.db'}")
    assert missing.returncode == 2 and "no store at" in missing.stderr
    assert not (tmp_path / "none.db").exists()


def test_serve_logs_json_only_and_stops_on_sigterm(tmp_path):
    """serve answers health and ready, every stderr line (uvicorn's included) is JSON, and SIGTERM exits 0."""
    with Served(tmp_path) as rx:
        import httpx

        assert httpx.get(rx.url + "/v1/health").json() == {"status": "ok"}
        assert httpx.get(rx.url + "/v1/ready").status_code == 200
    assert rx.proc.returncode == 0
    events = [line["event"] for line in rx.logs()]
    assert (
        any("Uvicorn running" in e for e in events)
        and "color_message" not in rx.log_path.read_text()
    )
