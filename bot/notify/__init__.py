"""What the bot says and where: cards, Slack mrkdwn, the ranking shown on a card, the outbox that delivers.

Shared by the Slack app (`bot/app`) and the alert webhooks (`bot/alerts`); it knows nothing of either.
"""
