"""The console in a real headless chromium: log in, read the fleet, search, open a workflow; every number matches the store.

Each test writes a screenshot of the pages it visits under its tmp dir
(``<tmp>/<page>.png``), for a person to look at.
"""

from __future__ import annotations

import pytest
from console.fleet import DECLINED, HOSTILE, Fleet, ask

from ruvon_cloud.console.queries import FAILED_STATUSES


@pytest.fixture
def page(browser, fleet: Fleet, tmp_path):
    """A fresh browser context logged in through the form (as an operator would)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    tab.goto(fleet.url + "/console/failures")
    assert tab.url.startswith(fleet.url + "/console/login?next=")
    tab.screenshot(path=tmp_path / "login.png")
    tab.fill("#token", fleet.token)
    tab.click("button[type=submit]")
    assert tab.url == fleet.url + "/console/failures"
    yield tab
    context.close()


def _numbers(tab, selector: str) -> list[int]:
    return [int(t.replace(",", "")) for t in tab.locator(selector).all_inner_texts()]


def test_login_form_refuses_a_device_secret_and_sets_a_strict_cookie(browser, fleet, tmp_path):
    """A device secret typed into the form is refused on the page; the operator token logs in with an HttpOnly SameSite=Strict cookie."""
    context = browser.new_context()
    tab = context.new_page()
    tab.goto(fleet.url + "/console")
    tab.fill("#token", fleet.devices["pos-1"].secret)
    tab.click("button[type=submit]")
    assert "not a valid operator token" in tab.inner_text("[role=alert]")
    tab.screenshot(path=tmp_path / "login-refused.png")
    tab.fill("#token", fleet.token)
    tab.click("button[type=submit]")
    assert tab.url == fleet.url + "/console" and tab.inner_text("h1") == "Fleet"
    (cookie,) = context.cookies()
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["value"] != fleet.token
    tab.click("text=Log out")
    tab.goto(fleet.url + "/console")
    assert "/console/login" in tab.url
    context.close()


def test_fleet_page_shows_each_device_as_the_registry_has_it(page, fleet, tmp_path):
    """Per device: workflows and audit rows stored, backlog, refusals in 24 h, and the badge (pos-3 never synced: stale)."""
    page.goto(fleet.url + "/console")
    page.screenshot(path=tmp_path / "fleet.png", full_page=True)
    devices = {d["device_id"]: d for d in ask(fleet, lambda s: s.devices())}
    assert page.locator("#devices tbody tr").count() == len(devices) == 3
    for device_id, d in devices.items():
        row = page.locator(f'#devices tr[data-device="{device_id}"]')
        assert (
            int(row.locator('[data-col="workflows"]').inner_text().replace(",", ""))
            == d["workflows"]
        )
        assert (
            int(row.locator('[data-col="audit_logs"]').inner_text().replace(",", ""))
            == d["audit_logs"]
        )
    assert devices["pos-1"]["workflows"] == 64 and devices["pos-2"]["workflows"] == 6
    badges = {
        d: page.locator(f'#devices tr[data-device="{d}"] .badge').inner_text() for d in devices
    }
    assert badges == {"pos-1": "healthy", "pos-2": "attention", "pos-3": "stale"}
    assert page.inner_text('#devices tr[data-device="pos-2"] [data-col="refusals_24h"]') != "0"
    assert _numbers(page, '[data-summary="workflows"]') == [
        sum(d["workflows"] for d in devices.values())
    ]
    assert _numbers(page, '[data-summary="stale"]') == [1]
    assert (
        page.locator("#devices tbody tr").first.get_attribute("data-device") == "pos-3"
    )  # stale first
    page.click('a.card[href="/console?show=stale"]')
    page.screenshot(path=tmp_path / "fleet-stale.png", full_page=True)
    assert page.locator("#devices tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.device)"
    ) == ["pos-3"]


def test_search_by_status_and_device_pages_through_every_match(page, fleet, tmp_path):
    """FAILED* on pos-1 finds exactly the stored failures; all of pos-1's workflows take two pages that add up to the store's count."""
    page.goto(fleet.url + "/console/workflows")
    page.select_option('select[name="status"]', "FAILED*")
    page.fill('input[name="device"]', "pos-1")
    page.click("#search button[type=submit]")
    page.screenshot(path=tmp_path / "search-failed.png", full_page=True)
    failed = ask(fleet, lambda s: s.workflows(device_id="pos-1", status=FAILED_STATUSES))
    shown = page.locator("table.workflows tbody a.mono").all_inner_texts()
    assert sorted(shown) == sorted(w["id"] for w in failed) and len(shown) == 3
    page.goto(fleet.url + "/console/workflows?device=pos-1")
    first = page.locator("table.workflows tbody a.mono").all_inner_texts()
    page.click("a[rel=next]")
    page.screenshot(path=tmp_path / "search-page-2.png", full_page=True)
    second = page.locator("table.workflows tbody a.mono").all_inner_texts()
    assert len(first) == 50 and page.locator("a[rel=next]").count() == 0
    stored = ask(fleet, lambda s: s.count_workflows(device_id="pos-1"))
    assert len(set(first) | set(second)) == len(first) + len(second) == stored == 64


def test_search_by_idempotency_key_opens_the_workflow_with_its_timeline(page, fleet, tmp_path):
    """Searching a failed payment's idempotency key finds it; its page shows the status, every audit row and the step error."""
    wid = fleet.failed_ids[0]
    wf = ask(fleet, lambda s: s.workflow(wid))
    page.goto(fleet.url + "/console/workflows")
    page.fill('input[name="key"]', wf["idempotency_key"])
    page.click("#search button[type=submit]")
    assert page.locator("table.workflows tbody tr").count() == 1
    page.click(f"text={wid}")
    page.screenshot(path=tmp_path / "workflow.png", full_page=True)
    audit = ask(fleet, lambda s: s.audit_logs(wid, wf["device_id"]))
    assert page.inner_text("#wf-status") == wf["status"] == "FAILED"
    assert page.locator("#timeline li").count() == len(audit) == 4
    assert page.locator("#timeline li.failed").count() == 2
    assert DECLINED in page.inner_text("#timeline")


def test_device_page_counts_and_chart_match_the_store(page, fleet, tmp_path):
    """The device page's totals, per-status counts, and the SVG chart's bars add up to what the store holds for it."""
    page.goto(fleet.url + "/console")
    page.click("text=pos-1")
    page.screenshot(path=tmp_path / "device.png", full_page=True)
    (device,) = ask(fleet, lambda s: s.devices(device_id="pos-1"))
    assert _numbers(page, '[data-fact="workflows"]') == [device["workflows"]]
    assert _numbers(page, '[data-fact="audit_logs"]') == [device["audit_logs"]]
    by_status = {
        page.locator(f"#status-counts td.num >> nth={i}").get_attribute("data-status"): n
        for i, n in enumerate(_numbers(page, "#status-counts td.num"))
    }
    assert by_status == {"COMPLETED": 61, "FAILED": 3}
    bars = page.locator("svg.chart rect.bar")
    assert (
        sum(int(bars.nth(i).get_attribute("data-audit-logs")) for i in range(bars.count()))
        == device["audit_logs"]
    )


def test_failures_page_lists_failed_workflows_and_refused_requests(page, fleet, tmp_path):
    """Failures shows every failed workflow of the fleet, pos-2's refused request, and pos-3 as stale."""
    page.screenshot(path=tmp_path / "failures.png", full_page=True)
    failed = page.locator("table.workflows tbody a.mono").all_inner_texts()
    assert sorted(failed) == sorted(fleet.failed_ids)
    refusals = ask(fleet, lambda s: s.refusals())
    assert page.locator("#refusals tbody tr").count() == len(refusals) >= 1
    assert "pos-2" in page.inner_text("#refusals") and "bad signature" in page.inner_text(
        "#refusals"
    )
    assert "pos-3" in page.inner_text("#stale")


def test_device_data_is_shown_as_text_never_run(page, fleet, tmp_path):
    """Markup a device put in a workflow's state is displayed literally: no element is created and no script runs."""
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{fleet.url}/console/devices/pos-1/workflows/{fleet.hostile_id}")
    page.screenshot(path=tmp_path / "hostile.png", full_page=True)
    assert HOSTILE in page.inner_text("#state")
    assert page.locator("#state img, #state script").count() == 0 and dialogs == []
