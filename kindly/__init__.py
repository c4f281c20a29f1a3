"""Kindly: shared contract, policy, settings and storage."""

import zoneinfo

# Contact decisions are replayed for months: they must come from the pinned ``tzdata`` package, not
# from whatever zone database the host happens to have (zoneinfo looks there first otherwise).
zoneinfo.reset_tzpath(to=[])
