"""The shell executor: argv templates from the catalog only, never a shell string.

Constructor (keyword-only)::

    ShellExecutor(timeout_s=60.0, max_output=8000, cwd=None, namespace="default", namespaces=None, env=None)

Each argv element is formatted with the validated parameters, ``{target}`` and ``{namespace}`` (the
service's namespace from ``namespaces``, the topology's node attribute, else ``namespace``); a value
always lands inside the one argument its placeholder sits in, and no shell ever parses the result, so
text like ``; rm -rf /`` stays an inert argument. ``env`` is added to the inherited environment (for
example ``{"KUBECONFIG": path}``). Output is captured and cut to a limit; a timeout kills the run.

A template that changes a replica count by a parameter gives ``read_replicas`` (an argv printing the
current count) and ``direction`` (``up`` or ``down``); the executor runs it first and fills
``{current_replicas}`` and ``{new_replicas}`` (current plus or minus the ``replicas`` parameter), since
``kubectl scale`` only sets absolute counts.
"""

from __future__ import annotations

import os
import re
import shlex
import string
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from playbooks.models import Action
from remediation.errors import ExecutorError
from remediation.executors.base import ExecRequest, Outcome, OutcomeMemo, Status, spec_of

# Used with fullmatch: a "$" would let a trailing newline through.
SAFE_TARGET = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,199}")
NAMESPACE_NAME = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
BUILTIN_PLACEHOLDERS = ("target", "namespace")
REPLICA_PLACEHOLDERS = ("current_replicas", "new_replicas")


def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def render_argv(
    template: Sequence[str], target: str | None, params: Mapping[str, Any], namespace: str = "default"
) -> list[str]:
    """Return the argv with each element's placeholders filled; refuse unknown placeholders and odd targets."""
    if target is not None and not SAFE_TARGET.fullmatch(target):
        raise ExecutorError(f"target {target!r} is not a service name (letters, digits, . _ -)")
    if not NAMESPACE_NAME.fullmatch(namespace):
        raise ExecutorError(f"namespace {namespace!r} is not a namespace name (DNS-1123 label)")
    values = {**{k: str(v) for k, v in params.items()}, "target": target or "", "namespace": namespace}
    argv = []
    for element in template:
        for name in _placeholders(element):
            if name not in values:
                raise ExecutorError(f"argv template {element!r} names {{{name}}}, which is not a parameter")
        argv.append(element.format_map(values))
    return argv


class ShellExecutor:
    """Runs the catalog's argv for an action with ``subprocess.run`` (no shell), once per request id."""

    kind = "shell"

    def __init__(
        self,
        *,
        timeout_s: float = 60.0,
        max_output: int = 8000,
        cwd: Path | None = None,
        namespace: str = "default",
        namespaces: Mapping[str, str] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        if not NAMESPACE_NAME.fullmatch(namespace):
            raise ExecutorError(f"namespace {namespace!r} is not a namespace name (DNS-1123 label)")
        self.timeout_s = timeout_s
        self.max_output = max_output
        self.cwd = cwd
        self.namespace = namespace
        self.namespaces = namespaces if namespaces is not None else {}
        self.env = dict(env or {})
        self._memo = OutcomeMemo()

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Run (or show) the argv; exit 0 is success, anything else a failure, a timeout unknown."""
        spec = spec_of(request, self.kind)
        namespace = self.namespaces.get(request.target or "") or self.namespace
        params = dict(request.params)
        read = spec.get("read_replicas")
        shown_read: tuple[str, ...] = ()
        if read:
            read_argv = render_argv(read, request.target, params, namespace)
            shown_read = (_shown(read_argv),)
            if dry_run:
                sign = "-" if spec.get("direction") == "down" else "+"
                params |= {
                    "current_replicas": "<current>",
                    "new_replicas": f"<current{sign}{params.get('replicas', '?')}>",
                }
        if dry_run:
            argv = render_argv(spec.get("argv", []), request.target, params, namespace)
            shown = (*shown_read, _shown(argv))
            return Outcome("dry_run", f"would run {' then '.join(shown)}", shown, data={"argv": argv})
        seen = self._memo.get(request.request_id)
        if seen is not None:
            return seen
        if read:
            counts = self._counts(read_argv, spec, params)
            if isinstance(counts, Outcome):
                return self._memo.put(request.request_id, counts)
            params |= counts
        argv = render_argv(spec.get("argv", []), request.target, params, namespace)
        return self._memo.put(request.request_id, self._run(argv, shown_read))

    def _counts(
        self, argv: list[str], spec: Mapping[str, Any], params: Mapping[str, Any]
    ) -> dict[str, str] | Outcome:
        """Run the read argv; return the replica placeholders, or the failed outcome."""
        done = self._run(argv, ())
        text = done.output.strip()
        if done.status != "succeeded" or not text.isdigit():
            return Outcome(
                "failed", f"cannot read the current replicas: {done.detail}: {text[:200]}", done.commands
            )
        current = int(text)
        delta = int(params["replicas"]) * (-1 if spec.get("direction") == "down" else 1)
        if current + delta < 1:
            return Outcome(
                "failed",
                f"scaling by {delta} would leave {current + delta} replicas (now {current}); refusing",
            )
        return {"current_replicas": str(current), "new_replicas": str(current + delta)}

    def _run(self, argv: list[str], before: tuple[str, ...]) -> Outcome:
        shown = (*before, _shown(argv))
        env = {**os.environ, **self.env} if self.env else None
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                cwd=self.cwd,
                env=env,
                check=False,
                shell=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = _cut((_text(exc.stdout) + _text(exc.stderr)), self.max_output)
            detail = f"{argv[0]} did not finish within {self.timeout_s:g}s; it was killed"
            return Outcome("unknown", detail, shown, out)
        except OSError as exc:
            return Outcome("failed", f"cannot start {argv[0]}: {exc.strerror or exc}", shown)
        output = _cut(done.stdout + done.stderr, self.max_output)
        status: Status = "succeeded" if done.returncode == 0 else "failed"
        data = {"argv": argv, "returncode": done.returncode}
        return Outcome(status, f"{argv[0]} exited {done.returncode}", shown, output, data)


def _shown(argv: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters cut]"


def check_spec(action: Action, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an action's shell config: argv (and read_replicas) lists whose placeholders are known."""
    read = spec.get("read_replicas")
    problems = _check_argv("argv", spec.get("argv"), action, REPLICA_PLACEHOLDERS if read else ())
    if read is not None:
        problems += _check_argv("read_replicas", read, action, ())
        if spec.get("direction") not in ("up", "down"):
            problems.append(("direction", "read_replicas needs direction: up or down"))
        if "replicas" not in action.params:
            problems.append(("read_replicas", f"needs {action.id} to have a 'replicas' parameter"))
    return problems


def _check_argv(key: str, argv: object, action: Action, extra: Sequence[str]) -> list[tuple[str, str]]:
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return [(key, "expected a non-empty list of strings")]
    known = {*BUILTIN_PLACEHOLDERS, *extra, *action.params}
    problems = []
    for i, element in enumerate(argv):
        try:
            names = _placeholders(element)
        except ValueError as exc:
            problems.append((f"{key}.{i}", f"bad template {element!r}: {exc}"))
            continue
        problems += [
            (f"{key}.{i}", f"{{{n}}} is not a parameter of {action.id}") for n in names if n not in known
        ]
    if "{" in argv[0]:
        problems.append((f"{key}.0", "the program must be fixed text, not a placeholder"))
    return problems
