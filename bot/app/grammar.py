"""The one grammar `/remediate` and @mentions share: text in, a typed command out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.app.errors import UsageError
from bot.notify.mrkdwn import safe
from incidents_db.incidents import SEVERITIES

USAGE: dict[str, str] = {
    "help": "help - this list",
    "incidents": "incidents - open incidents",
    "declare": "declare <service> <title> - open an incident and post its card (`declare` alone: a form)",
    "suggest": "suggest <incident> - ranked actions for an incident",
    "why": "why <incident> [n] - why suggestion n (default 1) is suggested",
    "similar": "similar <incident> - past incidents like this one",
    "approve": "approve <request> - approve an approval request",
    "reject": "reject <request> - reject an approval request",
    "status": "status <incident> - state, signals and latest timeline",
    "resolve": "resolve <incident> - close an incident",
    "reopen": "reopen <incident> - open a resolved incident again",
    "severity": "severity <incident> sev1|sev2|sev3|sev4 - change an incident's severity",
    "title": "title <incident> <title> - give an incident a new title",
    "postmortem": "postmortem <incident> [review @who ... | comment <text> | signoff | publish] - show or review "
    "an incident's postmortem",
    "postmortems": "postmortems - recent postmortems, their status and reviewers",
    "freeze": "freeze on|off [service|all] [reason] - stop (or allow again) changes, globally or for one service",
    "killswitch": "killswitch on|off [service|all] [reason] - stop (or allow again) every execution (admins)",
    "role": "role <incident> commander|scribe @who - give someone an incident role",
    "policy": "policy - which policy ranks suggestions",
    "whoami": "whoami - your roles and what you may approve",
}
HELP = "Usage: `/remediate <command>` or `@remediate <command>`\n" + "\n".join(
    f"• `{line.split(' - ')[0]}` - {line.split(' - ', 1)[1]}" for line in USAGE.values()
)
_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")
# Control characters other than tab and newline: no one types them, and PostgreSQL refuses NUL in text.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,199}")  # fullmatch only: "$" passes a trailing newline


@dataclass(frozen=True)
class Command:
    """A parsed command: its verb and arguments (free text keeps the words for service lookup)."""

    verb: str
    args: tuple[str, ...] = ()
    text: str = ""


def _usage(verb: str, problem: str) -> UsageError:
    return UsageError(f"{problem}. Usage: `{USAGE[verb].split(' - ')[0]}`")


def _one_id(verb: str, args: list[str], what: str) -> str:
    if not args:
        raise _usage(verb, f"name the {what}")
    if len(args) > 1 or not _ID.fullmatch(args[0]):
        raise _usage(
            verb, f"{safe(repr(args[0]), 200)} is not a {what} id" if len(args) == 1 else f"give one {what}"
        )
    return args[0]


_LEADING = re.compile(r"\A\s*(?:<@[A-Z0-9]+(?:\|[^>]*)?>\s*)*")  # mentions of the bot before the verb
_USER = re.compile(r"<@([UW][A-Z0-9]{2,})(?:\|[^>]*)?>")
STEPS = ("show", "review", "comment", "signoff", "publish")


def _postmortem(words: list[str]) -> Command:
    """Parse ``postmortem <incident> [step ...]``; reviewers are mentions (``<@U...>``), kept as user ids."""
    incident = _one_id("postmortem", words[:1], "incident") if len(words) <= 1 else words[0]
    if not _ID.fullmatch(incident):
        raise _usage("postmortem", f"{safe(repr(incident), 200)} is not an incident id")
    if len(words) == 1:
        return Command("postmortem", (incident,))
    step, rest = words[1].lower(), words[2:]
    if step not in STEPS:
        raise _usage("postmortem", f"{safe(repr(words[1]), 200)} is not one of {', '.join(STEPS)}")
    if step == "comment":
        if not rest:
            raise _usage("postmortem", "write the comment after the word comment")
        return Command("postmortem", (incident, step, " ".join(rest)))
    if step == "review":
        users = [m.group(1) if (m := _USER.fullmatch(w)) else "" for w in rest]
        if not users or "" in users:
            raise _usage("postmortem", "name the reviewers as @mentions after the word review")
        return Command("postmortem", (incident, step, *users))
    if rest:
        raise _usage("postmortem", f"{step} takes nothing after it")
    return Command("postmortem", (incident, step))


def _switch(verb: str, args: list[str]) -> Command:
    """Parse ``freeze|killswitch on|off [service|all] [reason ...]`` into (state, service or "", reason)."""
    if not args or args[0].lower() not in ("on", "off"):
        raise _usage(verb, "say on or off, then optionally one service (or all) and a reason")
    where = args[1] if len(args) > 1 else "all"
    if not _ID.fullmatch(where):
        raise _usage(verb, f"{safe(repr(where), 200)} is not a service name")
    service = "" if where.lower() in ("all", "*") else where
    return Command(verb, (args[0].lower(), service, " ".join(args[2:])))


def _role(words: list[str]) -> Command:
    """Parse ``role <incident> commander|scribe <@U...>`` into (incident, role, user id)."""
    if len(words) != 3 or words[1].lower() not in ("commander", "scribe"):
        raise _usage("role", "name the incident, the role (commander or scribe) and one @mention")
    if not _ID.fullmatch(words[0]):
        raise _usage("role", f"{safe(repr(words[0]), 200)} is not an incident id")
    user = _USER.fullmatch(words[2])
    if user is None:
        raise _usage("role", "name the person as an @mention")
    return Command("role", (words[0], words[1].lower(), user.group(1)))


def _amend(verb: str, args: list[str]) -> Command:
    """Parse ``severity <incident> sevN`` or ``title <incident> <words ...>`` into (incident, new value)."""
    if len(args) < 2:
        raise _usage(verb, "name the incident and give the new " + verb)
    if not _ID.fullmatch(args[0]):
        raise _usage(verb, f"{safe(repr(args[0]), 200)} is not an incident id")
    if verb == "title":
        return Command(verb, (args[0], " ".join(args[1:])))
    if len(args) > 2 or args[1].lower() not in SEVERITIES:
        raise _usage(verb, f"the severity is one of {', '.join(SEVERITIES)}")
    return Command(verb, (args[0], args[1].lower()))


def suggestion_number(raw: str) -> int:
    """Return the suggestion number ``raw`` names (1-10), or raise UsageError with the usage of ``why``."""
    if not raw.isdigit() or not 1 <= int(raw) <= 10:
        raise _usage("why", f"{safe(repr(raw), 200)} is not a suggestion number (1-10)")
    return int(raw)


def parse(text: str) -> Command:
    """Parse command text (mentions of the bot removed); raise UsageError with the right usage line.

    Text whose first word is no command becomes ``Command("free", text=...)`` for the service lookup.
    """
    if _CONTROL.search(text or ""):
        raise UsageError("the command contains control characters (such as NUL); type it again without them")
    clean = _MENTION.sub(" ", text or "").strip()
    words = clean.split()
    if not words:
        return Command("help")
    verb, args = words[0].lower(), words[1:]
    if verb in ("help", "incidents", "policy", "whoami", "postmortems"):
        return Command(verb)
    if verb == "postmortem":
        return _postmortem(_LEADING.sub("", text).split()[1:])
    if verb in ("suggest", "similar", "status", "resolve", "reopen"):
        return Command(verb, (_one_id(verb, args, "incident"),))
    if verb in ("approve", "reject"):
        return Command(verb, (_one_id(verb, args, "request"),))
    if verb == "why":
        if not args or len(args) > 2:
            raise _usage(verb, "name the incident and optionally the suggestion number")
        if not _ID.fullmatch(args[0]):
            raise _usage(verb, f"{safe(repr(args[0]), 200)} is not an incident id")
        if len(args) == 2:
            suggestion_number(args[1])
        return Command(verb, (args[0], args[1] if len(args) == 2 else "1"))
    if verb == "declare":
        if not args:
            return Command(verb)  # the declare form (a modal) where Slack gives a trigger
        if len(args) < 2:
            raise _usage(verb, "name the service and give a title")
        if not _ID.fullmatch(args[0]):
            raise _usage(verb, f"{safe(repr(args[0]), 200)} is not a service name")
        return Command(verb, (args[0], " ".join(args[1:])))
    if verb in ("freeze", "killswitch"):
        return _switch(verb, args)
    if verb in ("severity", "title"):
        return _amend(verb, args)
    if verb == "role":
        return _role(_LEADING.sub("", text).split()[1:])
    return Command("free", text=clean)
