"""The customer's self-service page at ``/p/<token>`` (docs/self-service.md)."""

from kindly.programs.selfservice.app import create_self_service

__all__ = ["create_self_service"]
