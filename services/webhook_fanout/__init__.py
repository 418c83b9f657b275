"""The webhook-fanout service: signed webhook subscriptions and deliveries."""
