"""People keyed by (workspace, user): actor ids, the RBAC file's ``T.../U...`` keys, the workspace rule."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from remediation.guardrails.models import RbacConfig
from remediation.guardrails.rbac import roles_of
from remediation.guardrails.workspaces import qualified, refusal, split


@pytest.mark.parametrize(
    ("workspace", "user", "actor"),
    [(None, "U0ALICE001", "U0ALICE001"), ("T0SECOND", "U0ERIN0005", "T0SECOND/U0ERIN0005"),
     ("E0GRID0001", "W0GRID0001", "E0GRID0001/W0GRID0001")],
)  # fmt: skip
def test_actor_ids_round_trip(workspace: str | None, user: str, actor: str) -> None:
    assert qualified(workspace, user) == actor
    assert split(actor) == (workspace, user)


@pytest.mark.parametrize(
    ("actor", "incident_workspace", "refused"),
    [
        ("U0ALICE001", None, None),  # home person, home incident
        ("T0SECOND/U0ERIN0005", "T0SECOND", None),  # second workspace, its own incident
        ("T0SECOND/U0ERIN0005", None, "INC-1 belongs to the home workspace; people of workspace T0SECOND"),
        ("U0ALICE001", "T0SECOND", "INC-1 belongs to workspace T0SECOND; people of the home workspace"),
        (
            "T0THIRD/U0X0000001",
            "T0SECOND",
            "INC-1 belongs to workspace T0SECOND; people of workspace T0THIRD",
        ),
    ],
)
def test_a_person_acts_only_on_their_own_workspace_incidents(
    actor: str, incident_workspace: str | None, refused: str | None
) -> None:
    reason = refusal(actor, "INC-1", incident_workspace)
    assert (reason is None) == (refused is None)
    if refused is not None:
        assert reason is not None and reason.startswith(refused)


def test_rbac_keys_a_person_by_workspace_and_user() -> None:
    config = RbacConfig.model_validate(
        {
            "roles": {"lead": "leads"},
            "users": {"U0ERIN0005": {"roles": []}, "T0SECOND/U0ERIN0005": {"roles": ["lead"]}},
            "groups": {"S0LEADS001": {"members": ["T0SECOND/U0BEN00006"], "roles": ["lead"]}},
        }
    )
    assert roles_of(config, "T0SECOND/U0ERIN0005") == {"lead"}
    assert roles_of(config, "U0ERIN0005") == frozenset()  # the same id at home is someone else's entry
    assert roles_of(config, "T0SECOND/U0BEN00006") == {"lead"}
    assert roles_of(config, "U0BEN00006") == frozenset()
    with pytest.raises(ValidationError, match="Slack user id"):
        RbacConfig.model_validate({"users": {"T0SECOND/erin": {}}})
