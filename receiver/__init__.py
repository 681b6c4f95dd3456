"""The vlmhooks web service: verified, durable, idempotent VLM Run callbacks, and their lookup."""

from receiver.app import create_app

__all__ = ["create_app"]
