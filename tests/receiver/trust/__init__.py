"""Callback tokens, provider signatures and their HMACs: known answers."""
