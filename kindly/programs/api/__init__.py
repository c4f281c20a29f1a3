"""Kindly's HTTP API: operator endpoints behind an API key, and signed inbound webhooks.

``create_app`` builds the FastAPI application; ``python -m kindly.programs.api`` serves it with uvicorn.
"""

from __future__ import annotations

from kindly.programs.api.app import create_app
from kindly.programs.api.settings import ApiSettings

__all__ = ["ApiSettings", "create_app"]
