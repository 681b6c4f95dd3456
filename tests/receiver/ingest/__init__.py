"""The request path of a callback, its checks, replay and read-through."""
