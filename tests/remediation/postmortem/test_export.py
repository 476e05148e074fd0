"""Markdown and HTML exports: unusual input (unicode, very long notes, hostile text), no actions, Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.orm import Session

from remediation.postmortem import service as postmortems
from remediation.postmortem import workflow
from remediation.postmortem.export_html import render_html
from remediation.postmortem.export_md import render_markdown
from tests.remediation.postmortem.conftest import ALICE, RBAC, add_bot_part, at, hand_built

HOSTILE = (
    '<script>alert(1)</script> <img src=x onerror=alert(2)> [click](javascript:alert(3)) | # & "q" </td>'
)
LONG = "x" * 5000 + " überlang 🚒"


class Tags(HTMLParser):
    """Collect start tags and attributes, to find anything that would run or fetch."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, Any]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _report(store: Session, **kw: Any) -> dict[str, Any]:
    incident_id = hand_built(store, **kw)
    return postmortems.report(db_session=store, incident_id=incident_id)


def test_hostile_unicode_and_long_text_are_escaped_in_both_exports(store: Session) -> None:
    incident_id = hand_built(store, note=HOSTILE + " " + LONG)
    add_bot_part(store, incident_id)
    workflow.edit(
        db_session=store,
        config=RBAC,
        incident_id=incident_id,
        actor=ALICE,
        now=at(40),
        changes={
            "summary": "Zusammenfassung: ünïcødé ✓ 🚒 " + HOSTILE,
            "contributing_factors": [HOSTILE, LONG],
            "action_items": [{"text": HOSTILE, "owner": "<@U0BOB00002>", "due": "2026-04-01"}],
        },
    )
    report = postmortems.report(db_session=store, incident_id=incident_id)
    html = render_html(report)
    parser = Tags()
    parser.feed(html)
    names = {tag for tag, _ in parser.tags}
    assert "script" not in names and "img" not in names and "a" not in names and "link" not in names
    assert not any(k.startswith("on") for _, attrs in parser.tags for k in attrs)
    assert "&lt;script&gt;" in html and "ünïcødé ✓ 🚒" in html and "überlang 🚒" in html
    assert not any(
        k in ("src", "href") for _, attrs in parser.tags for k in attrs
    )  # nothing fetched or linked
    md = render_markdown(report)
    assert "<script" not in md and "<img" not in md and "[click](javascript" not in md  # no tag, no link
    assert "&lt;script&gt;" in md and "\\[click\\]" in md and "\\|" in md and "ünïcødé ✓ 🚒" in md
    columns = 0
    for line in md.splitlines():  # every table row has its header's columns: a cell holds no raw pipe
        pipes = len(re.findall(r"(?<!\\)\|", line))
        if line.startswith("|---"):
            columns = pipes
        elif line.startswith("| ") and columns:
            assert pipes in (columns, 0), line
        else:
            columns = 0 if not line.startswith("|") else columns
    assert len(max(md.splitlines(), key=len)) < 6000  # a very long note is clipped in its cell


def test_no_actions_renders_every_section(store: Session) -> None:
    report = _report(store, actions=False)
    md, html = render_markdown(report), render_html(report)
    for heading in (
        "Summary",
        "Impact",
        "Detection",
        "Key figures",
        "Timeline",
        "Actions",
        "What the bot suggested against what people did",
        "Root cause",
        "Contributing factors",
        "Action items",
    ):
        assert f"## {heading}" in md and f"<h2>{heading}</h2>" in html
    assert "No action was requested or taken." in md and "No action was requested or taken." in html
    assert "<svg" in html and html.count("<circle") == sum(1 for _ in report["timeline"])


def test_the_html_report_renders_in_headless_chromium(store: Session, tmp_path: Path) -> None:
    if os.environ.get("REMEDIATE_TEST_BROWSER", "").lower() == "off":
        pytest.skip("REMEDIATE_TEST_BROWSER=off")
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.fail("chromium is not installed: run `sudo bash deploy/ci/install-system-deps.sh`")
    incident_id = hand_built(store, note="ünïcødé " + HOSTILE)
    add_bot_part(store, incident_id)
    page = tmp_path / "postmortem.html"
    page.write_text(
        render_html(postmortems.report(db_session=store, incident_id=incident_id)), encoding="utf-8"
    )
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        f"--user-data-dir={tmp_path / 'profile'}",
    ]
    shot = tmp_path / "postmortem.png"
    subprocess.run(
        [binary, *flags, f"--screenshot={shot}", "--window-size=1100,2400", page.as_uri()],
        capture_output=True,
        timeout=180,
        check=False,
    )
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000  # drawn, not blank
    dom = subprocess.run(
        [binary, *flags, "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    ).stdout
    assert "Postmortem INC-1" in dom and "<svg" in dom and "ünïcødé" in dom and "<script>alert" not in dom
    if os.environ.get("REMEDIATE_SCREENSHOT_DIR"):
        shutil.copy(shot, Path(os.environ["REMEDIATE_SCREENSHOT_DIR"]) / "postmortem.png")
