"""Headless Chromium opens App Home and the declare form in the sandbox page, and submits the form.

The page's own JavaScript does the work (the sidebar's App Home entry sends ``app_home_opened``, the
global shortcut button opens the modal, the form's selects are read as Slack sends them); the app
answers through the sandbox. Uses the `browser` fixture of tests/bot/test_browser.py (chromium needed).
"""

from __future__ import annotations

from collections.abc import Callable

from bot.demo.stack import DemoStack
from tests.bot.demo.conftest import demo_factory
from tests.bot.sandbox.conftest import wait_for
from tests.bot.test_browser import Page, browser

__all__ = ["browser", "demo_factory"]  # the fixtures
TEXT = "document.querySelector('#messages').innerText"
MODAL = "document.getElementById('modal')"


def _choose(page: Page, block: str, value: str) -> None:
    """Pick an option of a select in the open modal, as a person does (the change event fires)."""
    page.js(
        f"(() => {{ const s = {MODAL}.querySelector('[data-block-id=\"{block}\"] select');"
        f" [...s.options].forEach((o) => {{ o.selected = o.value === '{value}'; }});"
        " s.dispatchEvent(new Event('change')); })()"
    )


def test_app_home_and_the_declare_form_in_the_page(
    demo_factory: Callable[..., DemoStack], browser: Callable[[str], Page]
) -> None:
    stack = demo_factory(tick_s=3600.0, fault_every_s=3600.0)
    page = browser(stack.page_url + "#C0INCIDENT")
    wait_for(lambda: page.js("!!document.querySelector('[data-channel=\"home\"]')"))
    page.js("document.querySelector('[data-channel=\"home\"]').click()")
    wait_for(lambda: "Approvals you may give now" in page.js(TEXT))
    home = page.js(TEXT)
    assert "Safety" in home and "kill switch: off" in home
    assert page.js("!!document.querySelector('#messages button[data-action-id=\"home_kill_on\"]')")

    page.js("document.getElementById('shortcut-declare').click()")
    wait_for(lambda: page.js(f"!{MODAL}.hidden && {MODAL}.innerText.includes('Declare incident')"))
    page.js(f"{MODAL}.querySelector('[data-block-id=\"title\"] input').value = 'Typed in Chromium'")
    _choose(page, "services", "cartservice")
    page.js(f"[...{MODAL}.querySelectorAll('footer button')].pop().click()")  # Declare, no severity
    wait_for(lambda: "severity:" in page.js(f"{MODAL}.innerText"))
    _choose(page, "severity", "sev2")
    page.js(f"[...{MODAL}.querySelectorAll('footer button')].pop().click()")
    wait_for(lambda: page.js(f"{MODAL}.hidden"))
    page.js("document.querySelector('[data-channel=\"C0INCIDENT\"]').click()")
    wait_for(lambda: "Typed in Chromium" in page.js(TEXT))
