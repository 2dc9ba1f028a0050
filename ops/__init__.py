"""Operating a runner from outside: Prometheus metrics and alert webhooks (README, "Operating").

These implement ``sync.events.SyncEvents``; the runner builds them from its config
(``METRICS_ADDR``, ``NOTIFY``) and hands them to the sync manager.
"""
