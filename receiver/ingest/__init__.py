"""The request path of one callback: body, verification, slots, fetch-back, self-test, refusals,
replay."""
