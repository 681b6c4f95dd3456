"""Forwarding: every stored change delivered to the operator's webhooks, Redis Streams,
NATS JetStream or RabbitMQ, through the transactional outbox (`vlmhooks.store.outbox`).

Kept empty of imports: the write path imports `destinations` and must not pull in the
relay and its clients. Start from `vlmhooks.forward.runtime.Forwarding`.
"""
