"""The read API, its auth and OpenAPI document, and the public SDK against it."""
