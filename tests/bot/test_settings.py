"""Settings: environment, YAML file, precedence, and bad values naming key, value and expectation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError, load_settings, with_overrides


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith(("REMEDIATE_", "SLACK_", "OTEL_")):
            monkeypatch.delenv(key)


def test_defaults_use_a_sqlite_file_in_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REMEDIATE_DATA_DIR", str(tmp_path))
    settings = load_settings()
    assert settings.effective_database_url == f"sqlite:///{tmp_path / 'remediate.sqlite'}"
    assert settings.log_level == "INFO"


def test_environment_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REMEDIATE_DATABASE_URL", "postgresql://u@db/remediate")
    monkeypatch.setenv("REMEDIATE_LOG_LEVEL", "debug")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    settings = load_settings()
    assert settings.effective_database_url == "postgresql+psycopg://u@db/remediate"
    assert settings.log_level == "DEBUG"
    assert settings.slack_bot_token is not None and settings.slack_bot_token.get_secret_value() == "xoxb-1"


def test_yaml_file_below_environment_below_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "remediate.yaml"
    config.write_text("log_level: WARNING\nincident_channel: ops\ndatabase_url: sqlite:///from-yaml.db\n")
    settings = load_settings(config)
    assert (settings.log_level, settings.incident_channel) == ("WARNING", "ops")
    monkeypatch.setenv("REMEDIATE_INCIDENT_CHANNEL", "env-channel")
    monkeypatch.setenv("REMEDIATE_CONFIG", str(config))
    settings = load_settings(database_url="sqlite:///flag.db")
    assert settings.incident_channel == "env-channel"
    assert settings.database_url == "sqlite:///flag.db"
    assert settings.log_level == "WARNING"


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("REMEDIATE_LOG_LEVEL", "LOUD", "expected one of DEBUG, INFO, WARNING, ERROR"),
        ("REMEDIATE_DATABASE_URL", "mysql://x", "expected a sqlite:///PATH or postgresql+psycopg://"),
        ("SLACK_API_URL", "slack.local", "expected an http(s):// base URL"),
        ("OTEL_TRACES_EXPORTER", "zipkin", "Input should be 'otlp', 'console' or 'none'"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", "Input should be 'http/protobuf'"),
    ],
)
def test_bad_environment_value_names_key_value_and_expectation(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert env in message and repr(value) in message and expected in message


def test_bad_yaml_value_names_the_file(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("log_level: shouting\n")
    with pytest.raises(SettingsError, match=r"log_level in .*c\.yaml='shouting'.*expected one of"):
        load_settings(config)


def test_bad_yaml_files(tmp_path: Path) -> None:
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("databse_url: sqlite:///x\n")
    with pytest.raises(SettingsError, match=r"unknown setting.*databse_url"):
        load_settings(unknown)
    broken = tmp_path / "broken.yaml"
    broken.write_text("log_level: [\n")
    with pytest.raises(SettingsError, match="not valid YAML"):
        load_settings(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SettingsError, match="expected a mapping"):
        load_settings(listing)
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "missing.yaml")


def test_secrets_are_masked_in_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("slack_bot_token: [not, a, string]\n")
    with pytest.raises(SettingsError) as info:
        load_settings(config)
    assert "not" not in str(info.value).split("=", 1)[1].split(":")[0]


def test_bad_setting_fails_the_cli_start_with_one_line(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMEDIATE_", "SLACK_"))}
    env["REMEDIATE_LOG_LEVEL"] = "chatty"
    env["REMEDIATE_DATA_DIR"] = str(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "bot.cli.main", "db", "current"], capture_output=True, text=True, env=env
    )
    assert done.returncode == 1
    assert "REMEDIATE_LOG_LEVEL='chatty'" in done.stderr and "Traceback" not in done.stderr


def _cli(env_extra: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REMEDIATE_", "SLACK_"))}
    env.update({"REMEDIATE_DATA_DIR": str(tmp_path), "COLUMNS": "250", **env_extra})
    return subprocess.run(
        [sys.executable, "-m", "bot.cli.main", *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_config_show_masks_the_database_password(tmp_path: Path) -> None:
    env = {
        "REMEDIATE_DATABASE_URL": "postgresql://remediate:hunter2@db.internal:5432/remediate",
        "SLACK_API_URL": "https://proxy:s3cr3t@slack.internal/api/?token=t0ps3cret",
    }
    for args in (("config", "show"), ("config", "show", "--json")):
        done = _cli(env, tmp_path, *args)
        assert done.returncode == 0, done.stderr
        out = done.stdout + done.stderr
        assert "hunter2" not in out and "s3cr3t" not in out and "t0ps3cret" not in out
        assert "remediate:***@db.internal" in out and "proxy:***@slack.internal" in out


@pytest.mark.parametrize(
    ("env", "value"),
    [
        ("REMEDIATE_DATABASE_URL", "mysql://root:hunter2@db.internal/remediate"),
        ("REMEDIATE_DATABASE_URL", "root:hunter2@db.internal/remediate"),
        ("SLACK_API_URL", "ftp://bot:hunter2@slack.internal/api"),
    ],
)
def test_bad_setting_error_masks_the_password(env: str, value: str, tmp_path: Path) -> None:
    done = _cli({env: value}, tmp_path, "config", "show")
    assert done.returncode == 1
    assert env in done.stderr and "hunter2" not in done.stderr + done.stdout and "***@" in done.stderr


def test_store_errors_mask_the_password(tmp_path: Path) -> None:
    # Port 1: nothing listens, so the store cannot be opened and the error names the URL.
    done = _cli(
        {"REMEDIATE_DATABASE_URL": "postgresql://remediate:hunter2@127.0.0.1:1/x"}, tmp_path, "db", "current"
    )
    assert done.returncode == 1 and "cannot open the store" in done.stderr
    assert "hunter2" not in done.stderr + done.stdout and "remediate:***@127.0.0.1:1" in done.stderr


KNOBS = {
    "group_window_s": ("600", 600.0),
    "top_k": ("5", 5),
    "retry_base_s": ("0.5", 0.5),
    "retry_max_s": ("30", 30.0),
    "max_attempts": ("3", 3),
    "snapshot_interval_s": ("10", 10.0),
    "snapshot_max_age_s": ("120", 120.0),
    "execution_heartbeat_s": ("5", 5.0),
    "requester": ("U0BOT", "U0BOT"),
    "topology": ("hotel-reservation", "hotel-reservation"),
    "policy": ("runbook", "runbook"),
}


@pytest.mark.parametrize("key", sorted(KNOBS))
def test_every_knob_comes_from_environment_yaml_and_overrides(
    key: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    raw, value = KNOBS[key]
    config = tmp_path / "remediate.yaml"
    config.write_text(f"{key}: {raw}\n")
    assert getattr(load_settings(config), key) == value
    monkeypatch.setenv(f"REMEDIATE_{key.upper()}", raw)
    assert getattr(load_settings(), key) == value
    monkeypatch.delenv(f"REMEDIATE_{key.upper()}")
    assert getattr(load_settings(**{key: value}), key) == value


@pytest.mark.parametrize(
    ("env", "value", "expected"),
    [
        ("REMEDIATE_TOP_K", "0", "greater than or equal to 1"),
        ("REMEDIATE_GROUP_WINDOW_S", "-1", "greater than 0"),
        ("REMEDIATE_MAX_ATTEMPTS", "0", "greater than or equal to 1"),
        ("REMEDIATE_RETRY_BASE_S", "0", "greater than 0"),
        ("REMEDIATE_EXECUTION_HEARTBEAT_S", "90", "fewer seconds than execution_lease_s (60)"),
        ("REMEDIATE_POLICY", "", "at least 1 character"),
    ],
)
def test_bad_knob_names_its_key(env: str, value: str, expected: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=f"setting {env}=") as caught:
        load_settings()
    assert expected in str(caught.value)


def test_an_empty_topology_means_none_and_there_is_no_default_graph() -> None:
    assert load_settings().topology is None  # serve refuses without one; only the demo has a default
    assert load_settings(topology="online-boutique").topology == "online-boutique"
    assert load_settings(topology="").topology is None


def test_subcommand_flags_override_without_reading_the_environment_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = load_settings()
    monkeypatch.setenv("REMEDIATE_TOP_K", "9")
    changed = with_overrides(settings, requester="U0BOT", top_k=None, pagerduty_webhook_secret="pd")
    assert (changed.requester, changed.top_k) == ("U0BOT", 3)
    assert changed.pagerduty_webhook_secret is not None
    assert changed.pagerduty_webhook_secret.get_secret_value() == "pd"
    with pytest.raises(SettingsError, match=r"setting the command line=0: .*greater than or equal to 1"):
        with_overrides(settings, top_k=0)


def test_config_show_lists_every_knob(tmp_path: Path) -> None:
    done = _cli({"REMEDIATE_TOP_K": "4"}, tmp_path, "config", "show", "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert set(KNOBS) <= set(shown) and shown["top_k"] == 4


def test_readme_documents_every_setting() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
    for key in Settings.model_fields:
        env = key.upper() if key.startswith(("slack_", "otel_")) else f"REMEDIATE_{key.upper()}"
        assert f"| `{key}` | `{env}` |" in readme, key
