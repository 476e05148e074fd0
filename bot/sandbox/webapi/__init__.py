"""The Web API methods the sandbox answers, each returning Slack's JSON or raising `ApiError(name)`.

`METHODS` below is the one dispatcher table, method name -> handler; the handlers are grouped by
Slack API family: `chat`, `conversations`, `views`, `users` (with tokens, `auth.test` and
`apps.connections.open`), plus `response_url` posts. `args` reads arguments in any of Slack's
encodings. A new method is a handler in its family's module and one row here.
"""

from __future__ import annotations

from bot.sandbox.webapi import chat, conversations, users, views
from bot.sandbox.webapi.args import Args, Handler
from bot.sandbox.webapi.response_url import respond
from bot.sandbox.webapi.users import APPS_CONNECTIONS_OPEN, apps_connections_open, token_error

METHODS: dict[str, Handler] = {
    "auth.test": users.auth_test,
    "chat.postMessage": chat.chat_post_message,
    "chat.update": chat.chat_update,
    "chat.postEphemeral": chat.chat_post_ephemeral,
    "chat.getPermalink": chat.chat_get_permalink,
    "views.open": views.views_open,
    "views.update": views.views_update,
    "views.publish": views.views_publish,
    "users.info": users.users_info,
    "users.lookupByEmail": users.users_lookup_by_email,
    "usergroups.list": users.usergroups_list,
    "usergroups.users.list": users.usergroups_users_list,
    "conversations.list": conversations.conversations_list,
    "conversations.info": conversations.conversations_info,
    "conversations.history": conversations.conversations_history,
    "conversations.replies": conversations.conversations_replies,
    "conversations.join": conversations.conversations_join,
    "conversations.create": conversations.conversations_create,
    "conversations.invite": conversations.conversations_invite,
    "conversations.archive": conversations.conversations_archive,
}

__all__ = [
    "APPS_CONNECTIONS_OPEN",
    "METHODS",
    "Args",
    "Handler",
    "apps_connections_open",
    "respond",
    "token_error",
]
