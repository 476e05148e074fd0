"""The application: Slack app, chat commands, alert intake, scheduled jobs, the CLI and settings wiring."""
