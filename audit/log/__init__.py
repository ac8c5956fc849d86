"""The append-only, tamper-evident audit log.

This package imports nothing else of Steward. Its `merkle`, `entry` and `verify` modules import no
Django either, so that an auditor can verify an export with the standalone verifier alone.
"""
