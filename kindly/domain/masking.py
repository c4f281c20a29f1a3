"""Masking of identifiers wherever they leave the workflow for people to read."""

from __future__ import annotations


def mask_reference(reference: str, visible: int = 4) -> str:
    """Show a loan reference as ``****1234``: enough for the customer, useless to anyone else."""
    tail = reference[-visible:] if len(reference) > visible else reference[-1:]
    return "****" + tail


def mask_phone(phone: str) -> str:
    """Show a phone number as ``+86*******8000`` for consoles and operator output."""
    if len(phone) <= 7:
        return "*" * len(phone)
    return phone[:3] + "*" * (len(phone) - 7) + phone[-4:]
