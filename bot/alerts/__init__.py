"""Alert intake: Alertmanager, PagerDuty, Grafana and generic webhooks, grouped into incidents."""
