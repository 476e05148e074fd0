"""The alert vocabulary: real alert names (and label conditions) mapped onto the signals a policy reads.

A cluster's alerts are named by whoever wrote its rules (``KubePodCrashLooping``, ``IstioHigh5xxErrorRate``,
a Grafana title, a PagerDuty incident title); a policy reads a small fixed set of signals (the
simulator's ``ALERTS``). The mapping between them is data: the built-in ``catalog/alert-vocabulary.yaml``
plus a team's own file, whose rules are tried first. The first rule that matches an alert gives its
signal; an alert no rule matches is "not understood by the policy". The file also lists the values of
service labels that name monitoring components (kube-state-metrics, kubelet, ...), which service
resolution skips. The caller passes the policy's signals, so this package imports nothing above it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from playbooks.catalog import BUILTIN_DIR
from playbooks.errors import VocabularyError
from playbooks.yamlfiles import load_yaml_model

BUILTIN_FILE = BUILTIN_DIR / "alert-vocabulary.yaml"
MAX_PATTERN = 500


class VocabularyRule(BaseModel):
    """One rule: which alerts it matches (name, name pattern, label values) and the signal they carry."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert: tuple[str, ...] = ()
    pattern: str | None = Field(default=None, min_length=1, max_length=MAX_PATTERN)
    labels: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    signal: str = Field(min_length=1)
    description: str = ""

    @field_validator("alert", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return (value,) if isinstance(value, str) else value

    @field_validator("labels", mode="before")
    @classmethod
    def _values(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {k: (v,) if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.IGNORECASE)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression ({exc})") from None
        return value

    @model_validator(mode="after")
    def _says_what(self) -> VocabularyRule:
        if not (self.alert or self.pattern or self.labels):
            raise ValueError("a rule needs at least one of alert, pattern or labels")
        if self.alert and self.pattern:
            raise ValueError("a rule names alerts either exactly (alert) or by pattern, not both")
        if any(not v for v in self.labels.values()):
            raise ValueError("each label condition needs at least one value")
        return self

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        """Return whether an alert of this name and labels matches every condition of the rule."""
        if self.alert and name not in self.alert:
            return False
        if self.pattern is not None and not _compiled(self.pattern).search(name):
            return False
        return all(labels.get(key) in values for key, values in self.labels.items())

    def explain(self, name: str, labels: Mapping[str, str]) -> str:
        """Return how this rule matched an alert: the name and the label values it checked."""
        parts = []
        if self.alert:
            parts.append(f"alert name {name}")
        elif self.pattern is not None:
            parts.append(f"alert name matches /{self.pattern}/")
        parts.extend(f'{key}="{labels.get(key)}"' for key in sorted(self.labels))
        return " and ".join(parts)


class MonitoringComponents(BaseModel):
    """Values of service labels that name the monitoring stack, not the workload an alert is about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    names: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()


class VocabularyFile(BaseModel):
    """The top level of an alert vocabulary YAML file."""

    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    monitoring_components: MonitoringComponents = Field(default_factory=MonitoringComponents)
    rules: list[VocabularyRule] = Field(default_factory=list)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


@dataclass(frozen=True)
class Match:
    """Why an alert carries a signal: the rule that matched (None: its name is a signal) and its file."""

    signal: str
    rule: VocabularyRule | None
    origin: str
    why: str

    def __str__(self) -> str:
        return f"{self.why} -> {self.signal} ({self.origin})"


@dataclass(frozen=True)
class Vocabulary:
    """Rules in the order they are tried (a team's first), the policy's signals and the skipped values."""

    signals: tuple[str, ...]
    rules: tuple[tuple[VocabularyRule, str], ...] = ()
    component_names: frozenset[str] = frozenset()
    component_suffixes: tuple[str, ...] = ()
    _memo: dict[tuple[str, tuple[tuple[str, str], ...]], Match | None] = field(
        default_factory=dict, compare=False, repr=False
    )

    def match(self, name: str, labels: Mapping[str, str]) -> Match | None:
        """Return the signal an alert carries and why, or None when the policy does not understand it."""
        key = (name, tuple(sorted(labels.items())))
        if key in self._memo:
            return self._memo[key]
        found: Match | None = None
        if name in self.signals:
            found = Match(name, None, "the policy's own signal", f"alert name {name}")
        else:
            found = next(
                (
                    Match(r.signal, r, o, r.explain(name, labels))
                    for r, o in self.rules
                    if r.matches(name, labels)
                ),
                None,
            )
        if len(self._memo) < 10_000:  # a bounded memo: the same alerts are re-read at every ranking
            self._memo[key] = found
        return found

    def signal_of(self, name: str, labels: Mapping[str, str]) -> str | None:
        """Return the signal an alert carries, or None."""
        found = self.match(name, labels)
        return found.signal if found is not None else None

    def monitoring_component(self, value: str) -> bool:
        """Return whether a label value names a monitoring component (skipped when resolving a service)."""
        lower = value.lower()
        return lower in self.component_names or lower.endswith(self.component_suffixes)


def read_vocabulary_file(path: Path, signals: Collection[str]) -> VocabularyFile:
    """Parse one vocabulary file and check its signals; raise VocabularyError naming the file and key."""
    parsed = load_yaml_model(path, VocabularyFile, VocabularyError)
    for i, rule in enumerate(parsed.rules):
        if rule.signal not in signals:
            raise VocabularyError(
                f"{path}: rules.{i}.signal: unknown signal {rule.signal!r}; "
                f"the policy reads {', '.join(signals)}"
            )
    return parsed


def load_vocabulary(signals: Collection[str], extra: Path | None = None) -> Vocabulary:
    """Return the built-in vocabulary, extended by ``extra`` (its rules tried first) when given."""
    files: list[tuple[Path, str]] = [(extra, str(extra))] if extra is not None else []
    files.append((BUILTIN_FILE, "built-in"))
    rules: list[tuple[VocabularyRule, str]] = []
    names: set[str] = set()
    suffixes: list[str] = []
    for path, origin in files:
        parsed = read_vocabulary_file(path, signals)
        rules.extend((rule, f"{origin} rules.{i}") for i, rule in enumerate(parsed.rules))
        names.update(n.lower() for n in parsed.monitoring_components.names)
        suffixes.extend(s.lower() for s in parsed.monitoring_components.suffixes)
    return Vocabulary(tuple(signals), tuple(rules), frozenset(names), tuple(dict.fromkeys(suffixes)))
