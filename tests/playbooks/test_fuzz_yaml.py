"""Fuzzing the YAML files people write: any text -> a value or our own one-line error naming file and key.

Covers the action catalog and runbooks (loaders and `validate_playbooks`), the RBAC config, the Prometheus
queries file and the settings file. Inputs: arbitrary YAML documents, raw YAML-ish text and random
mutations of the shipped files. Never a raw KeyError, TypeError, AttributeError, RecursionError or
untranslated yaml error.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.feeds import prometheus
from bot.feeds.prometheus import FeedError, load_queries
from bot.settings import SettingsError, load_settings
from playbooks.catalog import BUILTIN_DIR, build_catalog, builtin_catalog
from playbooks.errors import CatalogError, RunbookError
from playbooks.runbooks import build_runbooks
from playbooks.validate import validate_playbooks
from remediation.errors import GuardrailConfigError
from remediation.executors.registry import CHECKERS
from remediation.guardrails.config import DEFAULT_RBAC, load_rbac
from tests.fuzz import JSON_VALUES, examples, mutated

FUZZ = settings(
    max_examples=examples(30),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SHIPPED = {
    "actions": yaml.safe_load((BUILTIN_DIR / "actions.yaml").read_text()),
    "runbooks": yaml.safe_load((BUILTIN_DIR / "runbooks.yaml").read_text()),
    "rbac": yaml.safe_load(DEFAULT_RBAC.read_text()),
    "queries": yaml.safe_load((Path(prometheus.__file__).parent / "snapshot-queries.yaml").read_text()),
    "settings": {"log_level": "INFO", "database_url": "sqlite:///x.sqlite", "incident_channel": "incidents"},
}
YAML_TEXT = st.text(alphabet=st.sampled_from(list("-:[]{}#&*!|>'\"%@`,? \n\tab01.\\")), max_size=60)
"""Raw text made of YAML's syntax characters: mostly broken documents."""


def documents(shipped: Any) -> st.SearchStrategy[str]:
    """Return YAML text: the shipped file mutated, any JSON-like value, raw syntax, or deep nesting."""
    return st.one_of(
        mutated(shipped).map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
        JSON_VALUES.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
        YAML_TEXT,
        st.integers(1, 3000).map(lambda n: "[" * n + "]" * n),
        st.binary(max_size=40).map(lambda b: b.decode("utf-8", errors="surrogateescape")),
    )


def written(text: str, directory: Path, name: str) -> Path:
    """Write the text as UTF-8 (surrogate escapes become the raw, undecodable bytes) and return the path."""
    path = directory / name
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    return path


def assert_refusal(exc: Exception, path: Path) -> None:
    """A refusal is one line that names the file (and so where to look)."""
    text = str(exc)
    assert str(path) in text, text
    assert "\n" not in text, text
    assert "Traceback" not in text


def run_loader(text: str, name: str, load: Callable[[Path], Any], error: type[Exception]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = written(text, Path(tmp), name)
        try:
            load(path)
        except error as exc:
            assert_refusal(exc, path)


@FUZZ
@given(documents(SHIPPED["actions"]))
def test_actions_file_is_loaded_or_refused_naming_the_key(text: str) -> None:
    run_loader(text, "actions.yaml", lambda p: build_catalog([p]), CatalogError)


@FUZZ
@given(documents(SHIPPED["runbooks"]))
def test_runbooks_file_is_loaded_or_refused_naming_the_key(text: str) -> None:
    run_loader(text, "runbooks.yaml", lambda p: build_runbooks([p], builtin_catalog()), RunbookError)


@FUZZ
@given(documents(SHIPPED["actions"]), documents(SHIPPED["runbooks"]))
def test_validate_playbooks_reports_problems_never_raises(actions: str, runbooks: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        written(actions, Path(tmp), "actions-extra.yaml")
        written(runbooks, Path(tmp), "runbooks-extra.yaml")
        problems = validate_playbooks([Path(tmp)], checkers=CHECKERS)
    for problem in problems:
        assert problem.file and problem.key, problem
        assert "\n" not in str(problem), str(problem)


@FUZZ
@given(documents(SHIPPED["rbac"]))
def test_rbac_config_is_loaded_or_refused_naming_the_key(text: str) -> None:
    run_loader(text, "rbac.yaml", load_rbac, GuardrailConfigError)


@FUZZ
@given(documents(SHIPPED["queries"]))
def test_prometheus_queries_file_is_loaded_or_refused_naming_the_key(text: str) -> None:
    run_loader(text, "queries.yaml", load_queries, FeedError)


@FUZZ
@given(documents(SHIPPED["settings"]))
def test_settings_file_is_loaded_or_refused_naming_the_key(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = written(text, Path(tmp), "remediate.yaml")
        try:
            load_settings(path)
        except SettingsError as exc:
            message = str(exc)
            assert "\n" not in message, message
            assert str(path) in message or "setting " in message, message


@pytest.mark.parametrize(
    ("shipped", "load", "error"),
    [
        ("actions", lambda p: build_catalog([p]), CatalogError),
        ("rbac", load_rbac, GuardrailConfigError),
        ("queries", load_queries, FeedError),
    ],
)
def test_broken_yaml_is_one_line_with_its_position(
    tmp_path: Path, shipped: str, load: Callable[[Path], Any], error: type[Exception]
) -> None:
    path = written("actions:\n  - id: [unclosed\n", tmp_path, "broken.yaml")
    with pytest.raises(error) as caught:
        load(path)
    assert_refusal(caught.value, path)
    assert "line 2" in str(caught.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (("[" * 5000 + "]" * 5000).encode(), "nesting depth"),  # was a RecursionError after seconds
        (b"actions: \xff\xfe\n", "not UTF-8"),  # was a raw UnicodeDecodeError
    ],
)
def test_deep_or_undecodable_files_are_refused_by_every_loader(
    tmp_path: Path, content: bytes, expected: str
) -> None:
    path = tmp_path / "actions.yaml"
    path.write_bytes(content)
    for load, error in (
        (lambda p: build_catalog([p]), CatalogError),
        (load_rbac, GuardrailConfigError),
        (load_queries, FeedError),
        (load_settings, SettingsError),
    ):
        with pytest.raises(error, match=expected) as caught:
            load(path)
        assert_refusal(caught.value, path)
    problems = validate_playbooks([tmp_path], include_builtin=False)
    assert [(p.key, expected in p.message) for p in problems] == [("(file)", True)]


def test_an_odd_key_is_named_readably(tmp_path: Path) -> None:
    written('actions: []\n"": 1\n"a\\nb": 2\n', tmp_path, "actions.yaml")
    keys = sorted(p.key for p in validate_playbooks([tmp_path], include_builtin=False))
    assert keys == ["''", "'a\\nb'"]


def test_an_unknown_setting_with_a_newline_is_named_on_one_line(tmp_path: Path) -> None:
    path = written('"log\\nlevel": INFO\n', tmp_path, "remediate.yaml")
    with pytest.raises(SettingsError) as caught:
        load_settings(path)
    assert "unknown setting(s) 'log\\nlevel'" in str(caught.value) and "\n" not in str(caught.value)
