"""The platform: what every part of Steward stands on and which knows nothing of its business
(errors and their JSON shape, settings from the environment, the cache, the embedded broker,
replies to waiting requests, worker liveness, prebuilt SQL, CSV safety, strict JSON, outages,
SVG charts). It imports nothing of Steward above it (ARCHITECTURE.md, tests/test_layers.py)."""
