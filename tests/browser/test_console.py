"""The console in a real browser (Debian's chromium through Playwright):
sign-in, a plan seen live by another browser, four eyes shown on the
buttons, a stale page's click refused with the new version, the kill switch
reaching every open page, CSRF and roles enforced on forged posts.
Screenshots of each page go to build/screenshots/."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from govex.execution.v1 import execution_pb2 as ES
from govex.execution.v1 import execution_service_pb2 as exe
from govex.governance.v1 import governance_service_pb2 as gov
from govex.governance.v1 import plan_pb2
from tests.conftest import Harness, HarnessFactory
from tests.integration.helpers import activate, approve, propose, review
from tests.support import md, token

pytestmark = pytest.mark.browser
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path("build/screenshots")
# Live updates must show within a second; the assertions wait this long at most.
LIVE = 5_000


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        try:
            yield launched
        finally:
            await launched.close()


# The desk of the story: alice proposes and may approve (so four eyes,
# not a missing role, is what stops her approving her own plan), bob reviews
# and approves, carol activates, dana (admin and operator) holds the kill switch.
DESK = {
    "alice": ["proposer", "approver", "viewer"],
    "bob": ["reviewer", "approver", "viewer"],
    "carol": ["approver", "operator", "viewer"],
    "dana": ["admin", "approver", "operator", "viewer"],
}


@pytest.fixture
async def desk(harness_factory: HarnessFactory, tmp_path: Path) -> Harness:
    """A server whose principals are the desk above (tokens as in development)."""
    path = tmp_path / "desk-principals.toml"
    path.write_text(
        "".join(
            f'[[principal]]\nname = "{name}"\nkind = "human"\nroles = {roles!r}\n'
            f'token_sha256 = "{hashlib.sha256(token(name).encode()).hexdigest()}"\n\n'
            for name, roles in DESK.items()
        ).replace("'", '"')
    )
    return await harness_factory(principals_file=str(path))


def base(h: Harness) -> str:
    assert h.running is not None and h.running.console is not None
    return f"http://127.0.0.1:{h.running.console.port}"


async def signed_in(browser: Browser, h: Harness, who: str) -> tuple[BrowserContext, Page]:
    context = await browser.new_context()
    page = await context.new_page()
    await page.goto(f"{base(h)}/plans")
    assert page.url.endswith("/login")  # not signed in: the sign-in page
    await page.get_by_label("Bearer token").fill(token(who))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator(".who span")).to_contain_text(f"{who} (")
    return context, page


async def shot(page: Page, name: str) -> None:
    await asyncio.to_thread(SHOTS.mkdir, parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_four_eyes_live_and_the_kill_switch(desk: Harness, browser: Browser) -> None:
    h = desk
    _, alice = await signed_in(browser, h, "alice")
    _, bob = await signed_in(browser, h, "bob")
    await bob.goto(f"{base(h)}/plans")
    await shot(bob, "plans-empty")
    # alice proposes through the gRPC API; bob's open page shows it, live.
    plan = await propose(h, "alice", reason="from the API")
    row = bob.locator(f'tr[data-plan="{plan.name}"]')
    await expect(row).to_be_visible(timeout=LIVE)
    await expect(row.locator(".state")).to_have_text("DRAFT")
    await shot(bob, "plans")

    plan_url = f"{base(h)}/plans/{plan.name.split('/')[1]}"
    await alice.goto(plan_url)
    await bob.goto(plan_url)
    # Beside the targets, what the account holds now and the legs it would take
    # (paper: 1 BTC at 50,000, 10 ETH at 2,500, 100,000 USDT: BTC is 28.57%).
    btc = bob.locator("#legs tbody tr", has_text="BTC/USDT")
    await expect(btc).to_contain_text("28.57%")
    await expect(btc).to_contain_text("50.00%")
    await expect(btc).to_contain_text("BUY")
    await expect(bob.locator("#executable")).to_contain_text("Not executable now")
    # ... and the schedule it would follow: no signals, SLOW, 3% a day, so days.
    days = await bob.locator("#schedule tbody tr").count()
    assert days > 1, days
    # bob reviews from the keyboard alone (a focusable button, Enter).
    await bob.get_by_role("button", name="Review").focus()
    await bob.keyboard.press("Enter")
    await expect(bob.locator("#plan-state")).to_have_text("REVIEWED")
    # alice's page follows, and her approve button says why she may not.
    await expect(alice.locator("#plan-state")).to_have_text("REVIEWED", timeout=LIVE)
    approve = alice.locator("#approve-button")
    await expect(approve).to_be_disabled()
    await expect(alice.locator("#approve-why")).to_have_text(
        "you proposed this plan: someone else must approve it"
    )
    await shot(alice, "plan-four-eyes")

    # A page read before a change: its click is refused and shows the new version.
    _, stale = await signed_in(browser, h, "dana")
    await stale.goto(plan_url)
    old_etag = await stale.locator("#plan-etag").inner_text()
    await bob.get_by_role("button", name="Approve").click()
    await expect(bob.locator("#plan-state")).to_have_text("APPROVED")
    # The form dana read is posted as it was (at the etag she saw), as a page
    # that missed the change would post it.
    await stale.evaluate(
        """(etag) => {
            const form = document.querySelector('form[action$="/approve"]');
            form.querySelector('input[name=etag]').value = etag;
            form.querySelector('button').disabled = false;
            form.submit();
        }""",
        old_etag,
    )
    await expect(stale.get_by_role("alert")).to_contain_text("refused", timeout=LIVE)
    await expect(stale.locator("#plan-state")).to_have_text("APPROVED")
    assert await stale.locator("#plan-etag").inner_text() != old_etag
    await shot(stale, "plan-stale-refused")

    _, carol = await signed_in(browser, h, "carol")
    await carol.goto(plan_url)
    await carol.get_by_role("button", name="Activate").click()
    await expect(carol.locator("#plan-state")).to_have_text("ACTIVE")

    # dana pulls the kill switch, confirming once; every open page shows the banner.
    await stale.goto(f"{base(h)}/freezes")
    await shot(stale, "freezes")
    stale.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await stale.locator("#kill-switch").click()
    for page in (alice, bob, carol, stale):
        await expect(page.locator("#banner .frozen")).to_contain_text("FULL_FREEZE", timeout=LIVE)
    await shot(bob, "plan-frozen-banner")
    assert h.running is not None
    assert [f.actor for f in await h.running.freezes.active()] == ["dana"]
    # Every form control on the pages seen has a label a screen reader reads,
    # and all text is at least WCAG AA contrast (4.5:1) against its background.
    for page in (alice, stale):
        unlabelled = await page.evaluate(UNLABELLED)
        assert unlabelled == [], unlabelled
        low = await page.evaluate(LOW_CONTRAST)
        assert low == [], low
    # The console's actions are counted like RPCs (govex_console_actions_total).
    counted = h.running.metrics.console_actions
    assert counted.labels("ReviewPlan", "OK")._value.get() == 1
    assert counted.labels("ApprovePlan", "OK")._value.get() == 1
    assert counted.labels("ApprovePlan", "ETAG_MISMATCH")._value.get() == 1
    assert counted.labels("Freeze", "OK")._value.get() == 1


# Visible text whose contrast with its background is under 4.5:1 (WCAG AA).
LOW_CONTRAST = """() => {
  const rgb = (s) => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (c) => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (let e = el; e; e = e.parentElement) {
      const c = rgb(getComputedStyle(e).backgroundColor);
      if (c.length === 3 || (c.length === 4 && c[3] > 0)) return c.slice(0, 3);
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    if (!el.getClientRects().length) continue;  // not shown
    if (![...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())) continue;
    const [a, b] = [lum(rgb(getComputedStyle(el).color)), lum(background(el))]
      .sort((x, y) => y - x);
    const ratio = (a + 0.05) / (b + 0.05);
    if (ratio < 4.5) low.push(el.tagName + " " + ratio.toFixed(2) + " " + el.textContent.trim());
  }
  return low;
}"""

# Visible inputs, selects and text areas without a <label> or an aria-label.
UNLABELLED = """() => [...document.querySelectorAll('input, select, textarea')]
    .filter(el => el.type !== 'hidden')
    .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
    .map(el => el.outerHTML)"""


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_forged_posts_are_refused(harness: Harness, browser: Browser) -> None:
    h = harness
    plan = await propose(h, "alice")
    plan_url = f"{base(h)}/plans/{plan.name.split('/')[1]}"
    victor_context, victor = await signed_in(browser, h, "victor")
    await victor.goto(plan_url)
    await expect(victor.locator("#plan-state")).to_have_text("DRAFT")
    assert await victor.locator(".actions button").count() == 0  # a viewer: no buttons
    await shot(victor, "plan-viewer")
    await victor.goto(f"{base(h)}/")
    await shot(victor, "state")
    # Without the CSRF token: refused before anything is read.
    bare = await victor_context.request.post(
        f"{plan_url}/review", form={"etag": plan.etag}, max_redirects=0
    )
    assert bare.status == 403 and "CSRF" in await bare.text()
    # With victor's own token, the role check refuses (as the gRPC API would).
    csrf = await victor.evaluate("() => document.querySelector('input[name=csrf]').value")
    forged = await victor_context.request.post(
        f"{plan_url}/review", form={"etag": plan.etag, "csrf": csrf}, max_redirects=0
    )
    assert forged.status == 409
    assert "ReviewPlan needs one of the roles" in await forged.text()
    still = await h.gov.GetPlan(gov.GetPlanRequest(name=plan.name), metadata=md("victor"))
    assert still.plan.state == plan_pb2.PLAN_STATE_DRAFT
    # A session cookie the browser cannot read from script, never sent cross-site.
    cookies = await victor_context.cookies()
    session = next(c for c in cookies if c["name"] == "govex_console")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    payload = base64.b64decode(session["value"].split(".")[0] + "==").decode()
    assert token("victor") not in payload and "token_sha256" in payload  # signed, not secret
    # A mistyped address is a page saying so, not a server error.
    missing = await victor.goto(f"{base(h)}/plans/01ARZ3NDEKTSV4RRFFQ69G5FAV")
    assert missing is not None and missing.status == 404
    await expect(victor.get_by_role("alert")).to_contain_text("does not exist")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_execution_advances_live_and_the_audit_log(
    harness: Harness, browser: Browser
) -> None:
    from tests.integration.test_execution import SMALL, active, execute, run_days
    from tests.integration.test_policy_api import CONFIDENT, publish, signal_set

    h = harness
    await publish(h, signal_set(h, minutes_old=0, **CONFIDENT))
    await h.settle()
    plan = await active(h, SMALL)
    started = await execute(h, plan)
    _, victor = await signed_in(browser, h, "victor")
    await victor.goto(f"{base(h)}/executions/{started.name.split('/')[1]}")
    before = await victor.locator("#execution-filled").inner_text()
    assert await victor.locator("#cancel-execution").count() == 0  # a viewer cannot cancel
    ended = await run_days(h, started.name, 2)  # the test clock moves; the page follows
    assert ended.state == ES.EXECUTION_STATE_SUCCEEDED
    await expect(victor.locator("#execution-state")).to_have_text("SUCCEEDED", timeout=LIVE)
    after = await victor.locator("#execution-filled").inner_text()
    assert Decimal(after) > Decimal(before)
    await expect(victor.locator("#execution-progress")).to_have_attribute("value", "100.0")
    await shot(victor, "execution")
    # The audit log is for auditors and admins; victor is told so.
    await victor.goto(f"{base(h)}/audit")
    await expect(victor.get_by_role("alert")).to_contain_text("ListAuditRecords needs one of")
    _, dana = await signed_in(browser, h, "dana")
    await dana.goto(f"{base(h)}/audit?resource={plan.name}")
    await expect(dana.locator("#chain")).to_contain_text("Chain tail verified")
    rpcs = await dana.locator("tbody tr td:nth-child(4)").all_inner_texts()
    assert rpcs[:4] == ["ProposePlan", "ReviewPlan", "ApprovePlan", "ActivatePlan"], rpcs
    await shot(dana, "audit")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_unfreeze_cancel_sign_out_and_a_phone(harness: Harness, browser: Browser) -> None:
    from tests.integration.freeze_helpers import freeze
    from tests.integration.test_execution import BIG, active, execute

    h = harness
    made = await freeze(h, reason="from the API")
    _, carol = await signed_in(browser, h, "carol")
    await carol.goto(f"{base(h)}/")
    await expect(carol.locator("#freezes-left")).to_contain_text("FULL_FREEZE (from the API)")
    await carol.goto(f"{base(h)}/freezes")
    await carol.get_by_role("button", name="Unfreeze").click()
    await expect(carol.locator("#banner .frozen")).to_have_count(0)
    assert h.running is not None and await h.running.freezes.active() == []
    # A long execution (no signals: SLOW, days), stopped from the console.
    started = await execute(h, await active(h, BIG))
    await carol.goto(f"{base(h)}/executions/{started.name.split('/')[1]}")
    carol.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await carol.locator("#cancel-execution").click()
    await expect(carol.locator("#execution-state")).to_have_text(
        re.compile("CANCELLING|CANCELLED"), timeout=LIVE
    )
    await expect(carol.locator("#execution-state")).to_have_text("CANCELLED", timeout=LIVE)
    # On a phone: one column, nothing cut; then sign out.
    phone = await browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = await phone.new_page()
    await page.goto(f"{base(h)}/login")
    await page.get_by_label("Bearer token").fill(token("victor"))
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.locator("#mode")).to_have_text("MANUAL")
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390 + 1, width  # no sideways scrolling
    await shot(page, "state-phone")
    await page.get_by_role("button", name="Sign out").click()
    await page.goto(f"{base(h)}/plans")
    assert page.url.endswith("/login")
    assert made.name


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_live_events_resume_from_last_event_id(harness: Harness, browser: Browser) -> None:
    from tests.integration.freeze_helpers import freeze

    h = harness
    context, _ = await signed_in(browser, h, "victor")
    cookie = next(c for c in await context.cookies() if c["name"] == "govex_console")
    await freeze(h, reason="one")
    await freeze(h, reason="two")

    async def first_ids(last_event_id: str, count: int) -> list[int]:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(base(h).rsplit(":", 1)[1]))
        writer.write(
            (
                "GET /events HTTP/1.1\r\nHost: x\r\n"
                f"Cookie: govex_console={cookie['value']}\r\n"
                f"Last-Event-ID: {last_event_id}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        text, ids = "", list[int]()
        try:
            while len(ids) < count:
                try:
                    chunk = await asyncio.wait_for(reader.read(4096), 10)
                except TimeoutError:
                    raise AssertionError(f"no events after {last_event_id}: {text!r}") from None
                assert chunk, text
                text += chunk.decode()
                ids = [int(m) for m in re.findall(r"^id: (\d+)$", text, re.MULTILINE)]
        finally:
            writer.close()
        assert "event: change" in text and '"kind": "FREEZE_CREATED"' in text
        return ids[:count]

    replayed = await first_ids("1", 2)
    assert replayed == sorted(set(replayed)) and replayed[0] > 1  # after 1, in order
    again = await first_ids(str(replayed[0]), 1)
    assert again == [replayed[1]]  # nothing repeated, nothing skipped


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sign_in_needs_its_form_and_is_throttled(harness: Harness, browser: Browser) -> None:
    h = harness
    assert h.running is not None
    counted = h.running.metrics.console_sign_ins
    context = await browser.new_context()
    http = context.request

    async def form_token() -> str:
        page = await http.get(f"{base(h)}/login")
        found = re.search(r'name="csrf" value="([^"]+)"', await page.text())
        assert found, await page.text()
        return found.group(1)

    async def sign_in(secret: str, csrf: str) -> tuple[int, str]:
        answer = await http.post(
            f"{base(h)}/login", form={"token": secret, "csrf": csrf}, max_redirects=0
        )
        return answer.status, await answer.text()

    csrf = await form_token()
    # A body larger than any form is refused before it is read into memory.
    huge = await http.post(
        f"{base(h)}/login",
        data=f"csrf={csrf}&token={'x' * 70_000}",
        headers={"content-type": "application/x-www-form-urlencoded"},
        max_redirects=0,
    )
    assert huge.status == 413 and "larger than 65536 bytes" in await huge.text()
    # A sign-in posted from elsewhere (no token of this form) signs nobody in.
    status, text = await sign_in(token("victor"), "")
    assert status == 403 and "CSRF" in text
    assert counted.labels("forged")._value.get() == 1
    for _ in range(5):
        status, text = await sign_in("dev-guess-token", csrf)
        assert status == 401 and "not known" in text
    # The sixth try within the minute waits, even with a good token.
    status, text = await sign_in(token("victor"), csrf)
    assert status == 429 and "Too many failed sign-ins: try again in 60 s" in text
    assert counted.labels("refused")._value.get() == 5
    assert counted.labels("throttled")._value.get() == 1
    h.clock.advance(timedelta(seconds=61))
    status, _ = await sign_in(token("victor"), csrf)
    assert status == 303
    assert counted.labels("ok")._value.get() == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_propose_and_execute_from_the_console(harness: Harness, browser: Browser) -> None:
    h = harness
    assert h.running is not None
    _, carol = await signed_in(browser, h, "carol")
    await carol.goto(f"{base(h)}/plans")
    await carol.get_by_text("Propose a plan").click()
    await carol.get_by_label("Target weights").fill("BTC 26\nETH lots\nUSDT 57")
    await carol.get_by_label("Reason").fill("from the console")
    # A change elsewhere while the form is half filled in (focus elsewhere):
    # the page refreshes around it, the typing and the open form stay.
    await carol.locator("h1").click()
    before = await carol.evaluate("() => document.body.dataset.refreshed || ''")
    meanwhile = await propose(h, "alice", reason="meanwhile")
    await carol.wait_for_function(
        "(before) => (document.body.dataset.refreshed || '') !== before", arg=before
    )
    await expect(carol.get_by_label("Target weights")).to_have_value("BTC 26\nETH lots\nUSDT 57")
    await carol.get_by_role("button", name="Propose").click()
    # A line that is not ASSET PERCENT: refused naming it, what was typed kept.
    await expect(carol.get_by_role("alert")).to_contain_text(
        "Propose refused: targets: line 2: 'lots' is not a percent"
    )
    await expect(carol.get_by_label("Target weights")).to_have_value("BTC 26\nETH lots\nUSDT 57")
    await carol.get_by_label("Target weights").fill("BTC 26\nETH 17\nUSDT 57")
    await carol.get_by_role("button", name="Propose").click()
    await expect(carol.locator("#plan-state")).to_have_text("DRAFT")
    name = "plans/" + carol.url.rsplit("/", 1)[1]
    plan = (await h.gov.GetPlan(gov.GetPlanRequest(name=name), metadata=md("victor"))).plan
    assert plan.proposed.principal == "carol" and plan.reason == "from the console"
    assert [(t.asset, t.weight_percent) for t in plan.targets] == [
        ("BTC", 26.0),
        ("ETH", 17.0),
        ("USDT", 57.0),
    ]
    # Execute waits for ACTIVE, and says so.
    plan = await approve(h, await review(h, plan))
    await expect(carol.locator("#plan-state")).to_have_text("APPROVED", timeout=LIVE)
    await expect(carol.locator("#execute-button")).to_be_disabled()
    await expect(carol.locator("#execute-why")).to_have_text(
        "only an ACTIVE plan is executed; this one is APPROVED"
    )
    await activate(h, plan, who="dana")
    await expect(carol.locator("#plan-state")).to_have_text("ACTIVE", timeout=LIVE)
    await expect(carol.locator("#execute-button")).to_be_enabled()
    # A dry run first (confirmed once), then the real one.
    await carol.get_by_label("Dry run").check()
    carol.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await carol.locator("#execute-button").click()
    await expect(carol.locator("#execution-state")).to_have_text("SIMULATED (dry run)")
    await carol.goto(f"{base(h)}/{name}")
    carol.once("dialog", lambda dialog: asyncio.ensure_future(dialog.accept()))
    await carol.locator("#execute-button").click()
    await expect(carol.locator("#execution-state")).to_have_text(re.compile("PENDING|RUNNING"))
    execution = "executions/" + carol.url.rsplit("/", 1)[1]
    started = await h.exe.GetExecution(
        exe.GetExecutionRequest(name=execution), metadata=md("victor")
    )
    assert started.execution.plan == name and not started.execution.dry_run
    await carol.goto(f"{base(h)}/{name}")
    await expect(carol.locator("#plan-executions tbody tr")).to_have_count(2)
    await shot(carol, "plan-executions")
    # Another approved plan cannot be activated yet: its button says until when.
    await approve(h, await review(h, meanwhile))
    await carol.goto(f"{base(h)}/{meanwhile.name}")
    await expect(carol.locator("#activate-button")).to_be_disabled()
    await expect(carol.locator("#activate-why")).to_contain_text(
        "publication cooldown: the last plan (" + name + ") was activated at"
    )
    await expect(carol.locator("#activate-why")).to_contain_text(
        "the next activation is allowed at"
    )
    counted = h.running.metrics.console_actions
    assert counted.labels("ProposePlan", "BAD_FORM")._value.get() == 1
    assert counted.labels("ProposePlan", "OK")._value.get() == 1
    assert counted.labels("ExecutePlan", "OK")._value.get() == 2
