"""Stripe-style idempotency keys: the first response is stored with its effect and replayed."""
