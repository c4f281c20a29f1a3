"""The simulation's segments: one per kind of rule worth provoking, as an operator's policy file would say.

Blocked dates are absolute in a policy file, so they are made from the run's start date.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

SEGMENTS = ("sim_cn", "sim_us", "sim_gentle", "sim_specialist", "sim_capped")


def simulation_policies(start: date) -> dict[str, dict[str, Any]]:
    """The policy file's content for a run that starts on ``start`` (UTC date)."""
    blocked = [(start + timedelta(days=n)).isoformat() for n in (9, 23, 40)]
    return {
        # Mainland rules with the mainland holiday calendar and a few blocked dates.
        "sim_cn": {"regime": "cn", "holiday_calendar": "cn", "blocked_dates": blocked},
        # Regulation F: its legal window and call limits, federal holidays.
        "sim_us": {"regime": "us", "holiday_calendar": "us"},
        # Gentle wording, every 10 days, four unanswered reminders before a call; no holidays.
        "sim_gentle": {
            "tone": "gentle",
            "follow_up_interval_days": 10,
            "unanswered_to_escalate": 4,
            "holiday_calendar": None,
        },
        # Straight to the specialists instead of the phone team.
        "sim_specialist": {"route_straight_to_specialist": True, "holiday_calendar": None},
        # Caps that bind: follow-ups every day against one a day and two in any seven.
        "sim_capped": {
            "follow_up_interval_days": 1,
            "max_sms_per_day": 1,
            "max_sms_per_7_days": 2,
            "unanswered_to_escalate": 5,
            "holiday_calendar": None,
            "blocked_dates": blocked,
        },
    }
