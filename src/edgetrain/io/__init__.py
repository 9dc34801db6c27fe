"""Saving and loading: model files (npz + JSON manifest), atomic writes."""
