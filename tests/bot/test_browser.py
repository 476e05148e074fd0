"""A real headless Chromium opens the sandbox page, clicks Approve on a live card, and sees the card change.

Driven over the DevTools protocol (a websocket, `websocket-client`): the click is a real mouse event
at the button's position, so it runs the page's own JavaScript exactly as a person's click does.
Needs the Debian package ``chromium`` (``deploy/ci/install-system-deps.sh``); missing it fails the
test with that instruction, unless ``REMEDIATE_TEST_BROWSER=off`` opts out.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from bot.demo.stack import DemoStack
from tests.bot.demo.conftest import demo_factory, stop_process, wait_card
from tests.bot.sandbox.conftest import WAIT_S, control, wait_for

__all__ = ["demo_factory"]  # the fixture, shared with tests/bot/demo
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)


def _binary() -> str:
    if os.environ.get("REMEDIATE_TEST_BROWSER", "").lower() == "off":
        pytest.skip("REMEDIATE_TEST_BROWSER=off")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.fail(
            "chromium is not installed: run `sudo bash deploy/ci/install-system-deps.sh` "
            "(or set REMEDIATE_TEST_BROWSER=off to skip this test)"
        )
    return path


class Page:
    """One browser tab over the DevTools protocol: evaluate JavaScript, dispatch mouse events."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=WAIT_S, suppress_origin=True)
        self.ids = itertools.count(1)

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == msg_id:
                assert "error" not in reply, reply["error"]
                return dict(reply.get("result", {}))

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def click_at(self, x: float, y: float) -> None:
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Callable[[str], Page]]:
    binary = _binary()
    procs: list[subprocess.Popen[bytes]] = []
    pages: list[Page] = []

    def open_page(url: str) -> Page:
        profile = tmp_path / "chromium-profile"
        log = (tmp_path / "chromium.log").open("wb")
        proc = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "--window-size=1280,2000", url],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        active = profile / "DevToolsActivePort"

        def port() -> str | None:
            assert proc.poll() is None, (tmp_path / "chromium.log").read_text(errors="replace")[-2000:]
            lines = active.read_text().split() if active.is_file() else []
            return lines[0] if lines else None

        devtools = f"http://127.0.0.1:{wait_for(port)}"  # a first start on a busy machine can take long

        def target() -> dict[str, Any] | None:
            with urllib.request.urlopen(devtools + "/json/list", timeout=WAIT_S) as resp:
                found = json.loads(resp.read())
            return next((t for t in found if t.get("type") == "page" and t["url"].startswith(url[:20])), None)

        page = Page(wait_for(target)["webSocketDebuggerUrl"])
        pages.append(page)
        return page

    yield open_page
    for page in pages:
        page.close()
    for proc in procs:
        stop_process(proc)


# The Approve button of the suggestion that names the fix, wherever the ranking put it on the card.
RESTART = "restart_service on cartservice"
FIND_APPROVE = f"""(() => {{
  const section = [...document.querySelectorAll('#messages .block-section')]
    .find((s) => s.innerText.includes('{RESTART}'));
  let block = section && section.nextElementSibling;
  while (block && !block.classList.contains('block-actions')) block = block.nextElementSibling;
  return block && block.querySelector('button[data-action-id^="approve:"]');
}})()"""


def click_until_delivered(page: Page, delivered: Callable[[], bool], every_s: float = 5.0) -> None:
    """Click the restart's Approve as a person does until the sandbox delivered the click to the app.

    The box is measured, then clicked in a second DevTools call: on a busy machine a card update can move
    the layout in between, and the click lands beside the button. Clicking again is safe (a decided
    request answers "already approved"); this waits on the delivery, not on a guess of the machine's speed.
    """
    last = [float("-inf")]

    def click_or_check() -> bool:
        if delivered():
            return True
        if time.monotonic() - last[0] >= every_s:
            box = page.js(
                f"(() => {{ const b = {FIND_APPROVE}; if (!b) return null; b.scrollIntoView({{block: 'center'}});"
                " const r = b.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
            )
            if box:
                page.click_at(*box)
            last[0] = time.monotonic()
        return False

    wait_for(click_or_check)


def look_at_the_first_screen(page: Page, tmp_path: Path) -> None:
    """The guide is up, times render as dates; save the screenshot README shows, then dismiss the guide.

    The screenshot goes to ``tmp_path``, and to ``$REMEDIATE_SCREENSHOT_DIR`` when set (``docs/img``
    refreshes README's picture: see docs/testing.md).
    """
    wait_for(lambda: page.js("!document.getElementById('guide').hidden"))
    guide = page.js("document.getElementById('guide').innerText")
    assert "carol" in guide and "Approve" in guide and "Deliveries to the app" in guide
    # the card's Opened time is a Slack date token: the page shows a date, the UTC fallback on hover
    assert page.js("document.querySelector('#messages time.slack-date').title").endswith(" UTC")
    assert "<!date" not in page.js("document.querySelector('#messages').innerText")
    page.call(
        "Emulation.setDeviceMetricsOverride", width=1280, height=1000, deviceScaleFactor=1, mobile=False
    )
    page.js(f"{FIND_APPROVE}.scrollIntoView({{block: 'end'}})")  # the suggestions and their buttons in view
    shot = base64.b64decode(page.call("Page.captureScreenshot", format="png")["data"])
    page.call("Emulation.clearDeviceMetricsOverride")
    assert shot.startswith(b"\x89PNG")
    (tmp_path / "demo-page.png").write_bytes(shot)
    if os.environ.get("REMEDIATE_SCREENSHOT_DIR"):
        (Path(os.environ["REMEDIATE_SCREENSHOT_DIR"]) / "demo-page.png").write_bytes(shot)
    page.js("document.getElementById('guide-close').click()")
    assert page.js("document.getElementById('guide').hidden")


def test_approve_click_in_chromium_updates_the_card(
    demo_factory: Callable[..., DemoStack], browser: Callable[[str], Page], tmp_path: Path
) -> None:
    # The world stands still after the fault (no evaluation tick within the test), so its metrics and
    # the ranking do not drift while Chromium starts; on a busy machine that took long enough for the
    # crash loop to saturate the service and put scale_out first. The fix still heals it at once.
    stack = demo_factory(tick_s=3600.0, fault_every_s=60.0)  # a fault waits while one is open
    assert stack.world is not None
    wait_card(stack, lambda b: RESTART in b)
    page = browser(stack.page_url + "#C0INCIDENT")
    wait_for(lambda: page.js(f"!!{FIND_APPROVE}"))
    action_id = page.js(f"{FIND_APPROVE}.dataset.actionId")
    assert "Open" in page.js("document.querySelector('#messages').innerText")
    look_at_the_first_screen(page, tmp_path)
    # Act as alice (on call; may approve this medium-risk restart), as a person picks her in the list.
    page.js(
        "(() => { const s = document.getElementById('user-select'); s.value = 'U0ALICE001';"
        " s.dispatchEvent(new Event('change')); })()"
    )
    wait_for(lambda: page.js("document.getElementById('user-select').value") == "U0ALICE001")
    sandbox = stack.sandbox
    assert sandbox is not None
    click_until_delivered(page, lambda: action_id in json.dumps(control(sandbox, "deliveries", method="GET")))
    # The card in the page changes: the action ran in the world, the incident resolved, buttons gone.
    wait_for(lambda: "Resolved" in page.js("document.querySelector('#messages').innerText"))
    assert not page.js(f"!!{FIND_APPROVE}")
    assert stack.world.status().actions == (("restart_service", "cartservice", "succeeded"),)
    deliveries = json.dumps(control(sandbox, "deliveries", method="GET"))
    assert action_id in deliveries and "U0ALICE001" in deliveries  # the page's click, as alice
