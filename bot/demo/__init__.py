"""The live demo: a simulated world acting as production, the bot, and the Slack sandbox in one process."""
