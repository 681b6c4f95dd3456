"""The read API and its routes: lookups, parameters, auth, usage, callback URLs, replay,
forwarding."""
