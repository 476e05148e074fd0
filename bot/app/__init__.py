"""The Slack app: `build_app(settings, services)`, its listeners, cards, outbox delivery and server."""
