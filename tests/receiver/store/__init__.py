"""Engines, migrations, the write batch's SQL and the forward-only rule."""
