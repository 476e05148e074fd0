"""Block Kit checks with Slack's published limits; a violation becomes `invalid_blocks` with reasons.

Reasons read like Slack's own: a message and a JSON pointer (`[json-pointer:/blocks/0/text/text]`).
Only the limits an app can trip in practice are enforced; unknown keys are left alone, as Slack
mostly does.
"""

from __future__ import annotations

from typing import Any

MAX_MESSAGE_BLOCKS = 50
MAX_VIEW_BLOCKS = 100
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_ACTION_ID = 255
MAX_BLOCK_ID = 255
MAX_BUTTON_VALUE = 2000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_VIEW_TITLE = 24
MAX_MESSAGE_TEXT = 40000

BLOCK_TYPES = {
    "section",
    "divider",
    "header",
    "context",
    "actions",
    "image",
    "input",
    "rich_text",
    "video",
    "file",
    "markdown",
}
VIEW_ONLY_BLOCKS = {"input"}
INTERACTIVE_TYPES = {
    "button",
    "overflow",
    "datepicker",
    "timepicker",
    "datetimepicker",
    "checkboxes",
    "radio_buttons",
    "static_select",
    "external_select",
    "users_select",
    "conversations_select",
    "channels_select",
    "multi_static_select",
    "multi_external_select",
    "multi_users_select",
    "multi_conversations_select",
    "multi_channels_select",
    "plain_text_input",
    "email_text_input",
    "url_text_input",
    "number_input",
    "rich_text_input",
    "file_input",
    "workflow_button",
}


class _Checker:
    """Walks blocks and collects every violation with its JSON pointer."""

    def __init__(self, *, surface: str) -> None:
        self.surface = surface
        self.errors: list[str] = []
        self.action_ids: set[str] = set()
        self.block_ids: set[str] = set()

    def fail(self, message: str, pointer: str) -> None:
        self.errors.append(f"{message} [json-pointer:{pointer}]")

    def text_object(self, obj: Any, pointer: str, *, limit: int, plain_only: bool = False) -> None:
        if not isinstance(obj, dict):
            self.fail("must be a text object", pointer)
            return
        kind = obj.get("type")
        allowed = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
        if kind not in allowed:
            self.fail(f"must be one of {', '.join(allowed)}", f"{pointer}/type")
        text = obj.get("text")
        if not isinstance(text, str) or not text:
            self.fail("must be more than 0 characters", f"{pointer}/text")
        elif len(text) > limit:
            self.fail(f"must be less than {limit + 1} characters", f"{pointer}/text")

    def unique_id(self, obj: dict[str, Any], key: str, seen: set[str], pointer: str, limit: int) -> None:
        """Check an `action_id` / `block_id`: a string within `limit` characters, unique in the message."""
        value = obj.get(key)
        if value is None:
            return
        if not isinstance(value, str) or len(value) > limit:
            self.fail(f"must be less than {limit + 1} characters", f"{pointer}/{key}")
        elif value in seen:
            self.fail(f"{key} `{value}` already exists", f"{pointer}/{key}")
        else:
            seen.add(value)

    def element(self, el: Any, pointer: str) -> None:
        if not isinstance(el, dict) or not isinstance(el.get("type"), str):
            self.fail("must provide an element with a type", pointer)
            return
        kind = el["type"]
        if kind in INTERACTIVE_TYPES:
            self.unique_id(el, "action_id", self.action_ids, pointer, MAX_ACTION_ID)
        if kind == "button":
            self.text_object(el.get("text"), f"{pointer}/text", limit=MAX_BUTTON_TEXT, plain_only=True)
            value = el.get("value")
            if isinstance(value, str) and len(value) > MAX_BUTTON_VALUE:
                self.fail(f"must be less than {MAX_BUTTON_VALUE + 1} characters", f"{pointer}/value")
            style = el.get("style")
            if style is not None and style not in ("primary", "danger"):
                self.fail("must be one of primary, danger", f"{pointer}/style")

    def block(self, block: Any, pointer: str) -> None:
        if not isinstance(block, dict):
            self.fail("must be an object", pointer)
            return
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            self.fail(f"unsupported type `{kind}`", f"{pointer}/type")
            return
        if kind in VIEW_ONLY_BLOCKS and self.surface == "message":
            self.fail(f"unsupported type `{kind}` in messages", f"{pointer}/type")
        self.unique_id(block, "block_id", self.block_ids, pointer, MAX_BLOCK_ID)
        getattr(self, f"_{kind}", lambda b, p: None)(block, pointer)

    def _section(self, block: dict[str, Any], pointer: str) -> None:
        text, fields = block.get("text"), block.get("fields")
        if text is None and not fields:
            self.fail("must provide either text or fields", pointer)
        if text is not None:
            self.text_object(text, f"{pointer}/text", limit=MAX_SECTION_TEXT)
        if fields is not None:
            if not isinstance(fields, list):
                self.fail("must be an array", f"{pointer}/fields")
            else:
                if len(fields) > MAX_FIELDS:
                    self.fail(f"must provide no more than {MAX_FIELDS} items", f"{pointer}/fields")
                for i, item in enumerate(fields):
                    self.text_object(item, f"{pointer}/fields/{i}", limit=MAX_FIELD_TEXT)
        if "accessory" in block:
            self.element(block["accessory"], f"{pointer}/accessory")

    def _header(self, block: dict[str, Any], pointer: str) -> None:
        self.text_object(block.get("text"), f"{pointer}/text", limit=MAX_HEADER_TEXT, plain_only=True)

    def _context(self, block: dict[str, Any], pointer: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.fail("must provide at least 1 element", f"{pointer}/elements")
            return
        if len(elements) > MAX_CONTEXT_ELEMENTS:
            self.fail(f"must provide no more than {MAX_CONTEXT_ELEMENTS} items", f"{pointer}/elements")
        for i, el in enumerate(elements):
            if isinstance(el, dict) and el.get("type") in ("plain_text", "mrkdwn"):
                self.text_object(el, f"{pointer}/elements/{i}", limit=MAX_SECTION_TEXT)
            elif not (isinstance(el, dict) and el.get("type") == "image"):
                self.fail("must be a text object or an image element", f"{pointer}/elements/{i}")

    def _actions(self, block: dict[str, Any], pointer: str) -> None:
        elements = block.get("elements")
        if not isinstance(elements, list) or not elements:
            self.fail("must provide at least 1 element", f"{pointer}/elements")
            return
        if len(elements) > MAX_ACTIONS_ELEMENTS:
            self.fail(f"must provide no more than {MAX_ACTIONS_ELEMENTS} items", f"{pointer}/elements")
        for i, el in enumerate(elements):
            self.element(el, f"{pointer}/elements/{i}")

    def _image(self, block: dict[str, Any], pointer: str) -> None:
        if not block.get("image_url") and not block.get("slack_file"):
            self.fail("must provide image_url or slack_file", pointer)
        if not isinstance(block.get("alt_text"), str) or not block["alt_text"]:
            self.fail("must be more than 0 characters", f"{pointer}/alt_text")

    def _input(self, block: dict[str, Any], pointer: str) -> None:
        self.text_object(block.get("label"), f"{pointer}/label", limit=2000, plain_only=True)
        self.element(block.get("element"), f"{pointer}/element")


def check_blocks(blocks: Any, *, surface: str = "message") -> list[str]:
    """Return every Block Kit limit `blocks` breaks (empty when Slack would accept them)."""
    checker = _Checker(surface=surface)
    if not isinstance(blocks, list):
        return ["must be an array [json-pointer:/blocks]"]
    limit = MAX_MESSAGE_BLOCKS if surface == "message" else MAX_VIEW_BLOCKS
    if len(blocks) > limit:
        checker.fail(f"must provide no more than {limit} items", "/blocks")
    for i, block in enumerate(blocks):
        checker.block(block, f"/blocks/{i}")
    return checker.errors


def check_view(view: Any) -> list[str]:
    """Return every limit a modal view breaks (title, buttons, blocks)."""
    if not isinstance(view, dict):
        return ["must be an object [json-pointer:/view]"]
    checker = _Checker(surface="view")
    if view.get("type") not in ("modal", "home"):
        checker.fail("must be one of modal, home", "/view/type")
    if view.get("type") == "modal":
        checker.text_object(view.get("title"), "/view/title", limit=MAX_VIEW_TITLE, plain_only=True)
        for key in ("submit", "close"):
            if key in view:
                checker.text_object(view[key], f"/view/{key}", limit=MAX_VIEW_TITLE, plain_only=True)
    errors = checker.errors
    errors += [
        e.replace("[json-pointer:/", "[json-pointer:/view/")
        for e in check_blocks(view.get("blocks", []), surface="view")
    ]
    return errors
