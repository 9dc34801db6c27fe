"""Engines execute a Graph: forward, backward and update, one module per precision mode."""
