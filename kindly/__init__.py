"""Kindly: shared contract, policy, settings and storage."""
