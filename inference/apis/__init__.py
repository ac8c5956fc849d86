"""The inference app's REST API, one module per area (inference/urls.py routes them)."""
