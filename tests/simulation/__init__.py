"""Deterministic simulation testing: seeded random histories of many accounts, injected faults, and an
independent checker of Kindly's promises (``make soak``; a small seeded run is part of ``make test``)."""
