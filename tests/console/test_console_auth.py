"""Who may open the console, over real HTTP against `ruvon-cloud serve`: operators only, read-only, nothing secret shown."""

from __future__ import annotations

import json
import sqlite3
import time

import httpx
import pytest
from console.fleet import Fleet, ask

from sync_agent import protocol

PAGES = [
    "/console",
    "/console/devices/pos-1",
    "/console/workflows?status=FAILED*",
    "/console/failures",
]


def _get(fleet: Fleet, path: str, **kw) -> httpx.Response:
    return httpx.get(fleet.url + path, follow_redirects=False, timeout=30, **kw)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _login(fleet: Fleet, token: str, next_path: str = "/console") -> httpx.Response:
    return httpx.post(
        fleet.url + "/console/login", data={"token": token, "next": next_path},
        follow_redirects=False, timeout=30,
    )  # fmt: skip


def test_without_credentials_api_clients_get_401_and_browsers_the_login_form(fleet):
    """Every page answers 401 (JSON, WWW-Authenticate: Bearer) to an API client and redirects a browser to the login form."""
    for path in PAGES:
        api = _get(fleet, path)
        assert api.status_code == 401 and api.headers["www-authenticate"].startswith("Bearer")
        assert api.json() == {"error": "operator token required"}
        page = _get(fleet, path, headers={"Accept": "text/html"})
        assert page.status_code == 303 and page.headers["location"].startswith(
            "/console/login?next="
        )
    assert "Operator token" in _get(fleet, "/console/login").text


def test_an_operator_token_opens_every_page(fleet):
    """The bearer token printed by add-operator opens each page with 200 HTML and hardening headers."""
    for path in PAGES:
        r = _get(fleet, path, headers=_bearer(fleet.token))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html"), path
        assert "script-src" not in r.headers["content-security-policy"]
        assert r.headers["x-frame-options"] == "DENY" and r.headers["cache-control"] == "no-store"


def test_device_keys_cannot_open_the_console(fleet):
    """A device's secret or key id as a bearer token, or a correctly signed request, is 401 on every page."""
    device = fleet.devices["pos-1"]
    for token in (device.secret, device.key_id, fleet.token + "x", "ro_" + device.secret):
        assert _get(fleet, "/console", headers=_bearer(token)).status_code == 401
    nonce, ts = "n" * 32, str(int(time.time()))
    signature = protocol.sign(device.secret, ts, nonce, "GET", "/console", b"")
    signed = {protocol.H_KEY_ID: device.key_id, protocol.H_TIMESTAMP: ts, protocol.H_NONCE: nonce,
              protocol.H_SIGNATURE: signature}  # fmt: skip
    assert _get(fleet, "/console", headers=signed).status_code == 401
    assert _login(fleet, device.secret).status_code == 401


def test_operator_tokens_cannot_post_batches(fleet):
    """A batch sent with an operator bearer token (or the token as key id) is refused and stores nothing."""
    before = ask(fleet, lambda s: s.counts("pos-1"))
    body = json.dumps({"batch_id": "b-op", "device_id": "pos-1", "workflows": [], "audit_logs": []})
    url = fleet.url + "/v1/devices/pos-1/batches"
    as_bearer = httpx.post(url, content=body, headers=_bearer(fleet.token), timeout=30)
    as_key = httpx.post(
        url, content=body, timeout=30,
        headers={protocol.H_KEY_ID: fleet.token, protocol.H_TIMESTAMP: str(int(time.time())),
                 protocol.H_NONCE: "x" * 16, protocol.H_SIGNATURE: "v1=" + "0" * 64},
    )  # fmt: skip
    assert as_bearer.status_code == 401 and as_key.status_code == 401
    assert ask(fleet, lambda s: s.counts("pos-1")) == before


def test_login_sets_a_strict_httponly_session_cookie_that_is_not_the_token(fleet):
    """The login form answers 303 with an HttpOnly, SameSite=Strict cookie scoped to /console; the cookie opens pages; logout ends it."""
    r = _login(fleet, fleet.token, "/console/failures")
    assert r.status_code == 303 and r.headers["location"] == "/console/failures"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert fleet.token not in cookie
    session = r.cookies["ruvon_console_session"]
    jar = {"ruvon_console_session": session}
    assert _get(fleet, "/console/failures", cookies=jar).status_code == 200
    out = httpx.post(fleet.url + "/console/logout", cookies=jar, follow_redirects=False, timeout=30)
    assert out.status_code == 303 and "Max-Age=0" in out.headers["set-cookie"]
    assert _get(fleet, "/console", cookies=jar).status_code == 401


def test_login_never_redirects_off_the_console(fleet):
    """A `next` that points at another host or outside /console lands on the fleet page instead."""
    for target in (
        "//evil.example/",
        "https://evil.example/console",
        "/v1/health",
        "/console//evil",
    ):
        assert _login(fleet, fleet.token, target).headers["location"] == "/console"


def test_pages_are_read_only(fleet):
    """A POST, PUT or DELETE to a page is 405 even for an operator."""
    for method in ("POST", "PUT", "DELETE"):
        r = httpx.request(
            method, fleet.url + "/console/failures", headers=_bearer(fleet.token), timeout=30
        )
        assert r.status_code == 405


def test_no_secret_is_rendered(fleet):
    """No page shows the operator token, a device secret, or the master key -- not even one a refused request presented as its key id."""
    signed = {protocol.H_KEY_ID: fleet.token, protocol.H_TIMESTAMP: str(int(time.time())),
              protocol.H_NONCE: "y" * 16, protocol.H_SIGNATURE: "v1=" + "0" * 64}  # fmt: skip
    refused = httpx.post(
        fleet.url + "/v1/devices/pos-1/batches", content=b"{}", headers=signed, timeout=30
    )
    assert refused.status_code == 401
    master = (fleet.tmp / "master-key").read_text().strip()
    secrets = {"operator token": fleet.token, "master key": master}
    secrets |= {f"{d.device_id} secret": d.secret for d in fleet.devices.values()}
    paths = PAGES + [f"/console/devices/{d}" for d in fleet.devices] + ["/console/login"]
    for path in paths:
        text = _get(fleet, path, headers=_bearer(fleet.token)).text
        assert [name for name, s in secrets.items() if s in text] == [], path


def test_add_operator_prints_the_token_once_and_stores_only_its_digest(fleet):
    """add-operator --json prints {operator, token}; the store holds no copy; a second add is exit 2 unless --replace."""
    out = fleet.cloud("add-operator", "bob", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) == {"operator", "token"} and doc["operator"] == "bob"
    if fleet.store_url.startswith("sqlite:"):
        dump = "\n".join(sqlite3.connect(fleet.tmp / "cloud.db").iterdump())
        assert "bob" in dump and doc["token"] not in dump
    again = fleet.cloud("add-operator", "bob")
    assert (
        again.returncode == 2
        and "already exists" in again.stderr
        and "Traceback" not in again.stderr
    )
    bad = fleet.cloud("add-operator", "bob smith")
    assert bad.returncode == 2 and "operator name" in bad.stderr
    replaced = json.loads(fleet.cloud("add-operator", "bob", "--replace", "--json").stdout)
    assert _get(fleet, "/console", headers=_bearer(doc["token"])).status_code == 401
    assert _get(fleet, "/console", headers=_bearer(replaced["token"])).status_code == 200


@pytest.mark.parametrize(
    "path", ["/console/devices/nope", "/console/devices/pos-1/workflows/nope", "/console/nope"]
)
def test_unknown_things_are_404(fleet, path):
    """A device, workflow or page that does not exist is a 404 page, not an error."""
    assert _get(fleet, path, headers=_bearer(fleet.token)).status_code == 404


def test_a_store_that_cannot_commit_is_503_with_retry_after(fleet):
    """While another process holds the SQLite write lock, logging in answers 503 + Retry-After (no traceback page); after, it works."""
    if not fleet.store_url.startswith("sqlite:"):
        pytest.skip("the write lock is a SQLite case; PostgreSQL rows do not lock a login")
    holder = sqlite3.connect(fleet.tmp / "cloud.db", isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        locked = _login(fleet, fleet.token)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert locked.status_code == 503 and locked.headers["retry-after"] == "5"
    assert "Store unavailable" in locked.text and "Traceback" not in locked.text
    assert _login(fleet, fleet.token).status_code == 303
