"""The operator's window: one hardened HTTP server for /metrics, /status, the page and SSE.

Imports only :mod:`autoheal.core` and :mod:`autoheal.store` (DESIGN.md §1).
"""
