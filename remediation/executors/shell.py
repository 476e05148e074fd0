"""The shell executor: argv templates from the catalog only, never a shell string.

Each argv element is formatted with the validated parameters (and ``target``); a value always lands
inside the one argument its placeholder sits in, and no shell ever parses the result, so text like
``; rm -rf /`` stays an inert argument. Output is captured and cut to a limit; a timeout kills the run.
"""

from __future__ import annotations

import re
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


def _placeholders(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def render_argv(template: Sequence[str], target: str | None, params: Mapping[str, Any]) -> list[str]:
    """Return the argv with each element's placeholders filled; refuse unknown placeholders and odd targets."""
    if target is not None and not SAFE_TARGET.fullmatch(target):
        raise ExecutorError(f"target {target!r} is not a service name (letters, digits, . _ -)")
    values = {**{k: str(v) for k, v in params.items()}, "target": target or ""}
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

    def __init__(self, *, timeout_s: float = 60.0, max_output: int = 8000, cwd: Path | None = None) -> None:
        self.timeout_s = timeout_s
        self.max_output = max_output
        self.cwd = cwd
        self._memo = OutcomeMemo()

    def execute(self, request: ExecRequest, dry_run: bool) -> Outcome:
        """Run (or show) the argv; exit 0 is success, anything else a failure, a timeout unknown."""
        spec = spec_of(request, self.kind)
        argv = render_argv(spec.get("argv", []), request.target, request.params)
        shown = " ".join(_quote(a) for a in argv)
        if dry_run:
            return Outcome("dry_run", f"would run {shown}", (shown,), data={"argv": argv})
        seen = self._memo.get(request.request_id)
        if seen is not None:
            return seen
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                cwd=self.cwd,
                check=False,
                shell=False,
            )
        except subprocess.TimeoutExpired as exc:
            out = _cut((_text(exc.stdout) + _text(exc.stderr)), self.max_output)
            outcome = Outcome(
                "unknown",
                f"{argv[0]} did not finish within {self.timeout_s:g}s; it was killed",
                (shown,),
                out,
            )
            return self._memo.put(request.request_id, outcome)
        except OSError as exc:
            outcome = Outcome("failed", f"cannot start {argv[0]}: {exc.strerror or exc}", (shown,))
            return self._memo.put(request.request_id, outcome)
        output = _cut(done.stdout + done.stderr, self.max_output)
        status: Status = "succeeded" if done.returncode == 0 else "failed"
        data = {"argv": argv, "returncode": done.returncode}
        return self._memo.put(
            request.request_id, Outcome(status, f"{argv[0]} exited {done.returncode}", (shown,), output, data)
        )


def _text(value: str | bytes | None) -> str:
    if value is None:
        return ""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... [{len(text) - limit} more characters cut]"


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def check_spec(action: Action, spec: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Check an action's shell config: a non-empty list ``argv`` whose placeholders are parameters or target."""
    argv = spec.get("argv")
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        return [("argv", "expected a non-empty list of strings")]
    problems = []
    for i, element in enumerate(argv):
        try:
            names = _placeholders(element)
        except ValueError as exc:
            problems.append((f"argv.{i}", f"bad template {element!r}: {exc}"))
            continue
        for name in names:
            if name != "target" and name not in action.params:
                problems.append((f"argv.{i}", f"{{{name}}} is not a parameter of {action.id}"))
    if "{" in argv[0]:
        problems.append(("argv.0", "the program must be fixed text, not a placeholder"))
    return problems
