"""A small demo portfolio for ``make run``: SMS go out within a minute wherever it is daytime, and one
account the carrier cannot text waits in the phone team's queue."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from temporalio.client import Client

from kindly.domain.contract import AccountInput, SignalName, SmsUndeliverable
from kindly.programs.temporal import open_account

logger = logging.getLogger(__name__)

UNREACHABLE = "demo: the carrier reports this number unreachable by SMS"

DEMO_ZONES = (
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Sydney",
    "Asia/Kolkata",
    "Europe/Berlin",
    "Europe/London",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Los_Angeles",
    "Pacific/Honolulu",
    "Pacific/Auckland",
)


def _daytime_zones(now: datetime) -> list[str]:
    """Zones where a reminder may go right now (10:00-18:00 local), and then the rest."""
    in_window = [z for z in DEMO_ZONES if 10 <= now.astimezone(ZoneInfo(z)).hour < 18]
    return in_window + [z for z in DEMO_ZONES if z not in in_window]


def demo_accounts(now: datetime | None = None) -> list[AccountInput]:
    """Accounts at each point of the cadence: due in a week, due today, overdue 1 and 10 days."""
    now = now or datetime.now(UTC)
    zones = _daytime_zones(now)
    offsets = [7, 0, -1, -10, -30]
    accounts = []
    for number, days in enumerate(offsets, start=1):
        zone = zones[(number - 1) % len(zones)]
        local_today = now.astimezone(ZoneInfo(zone)).date()
        accounts.append(
            AccountInput(
                account_id=f"DEMO-{local_today:%Y%m%d}-{number:04d}",
                customer_name=f"Demo Customer {number}",
                phone=f"+861380013{number:04d}",
                timezone=zone,
                locale="zh-CN" if number % 2 else "en-US",
                amount_due=Decimal("1200.00") + number * 150,
                currency="CNY",
                due_date=local_today + timedelta(days=days),
                # One account in Guangdong: its region's template variants apply, where there are any.
                region="GD" if days == -1 else None,
            )
        )
    # One account whose number the carrier reports unreachable by SMS: it goes to the phone queue at once.
    zone = zones[0]
    local_today = now.astimezone(ZoneInfo(zone)).date()
    accounts.append(
        AccountInput(
            account_id=f"DEMO-{local_today:%Y%m%d}-PHONE",
            customer_name="Demo Phone Only",
            phone="+8613800137777",
            timezone=zone,
            locale="zh-CN",
            amount_due=Decimal("2650.00"),
            currency="CNY",
            due_date=local_today - timedelta(days=12),
        )
    )
    # One account in a zone where it is night, to show a deferral in its timeline.
    night = next((z for z in DEMO_ZONES if not 8 <= now.astimezone(ZoneInfo(z)).hour < 21), DEMO_ZONES[0])
    local_today = now.astimezone(ZoneInfo(night)).date()
    accounts.append(
        AccountInput(
            account_id=f"DEMO-{local_today:%Y%m%d}-NIGHT",
            customer_name="Demo Night Owl",
            phone="+8613800139999",
            timezone=night,
            locale="en-US",
            amount_due=Decimal("880.00"),
            currency="CNY",
            due_date=local_today - timedelta(days=1),
        )
    )
    return accounts


async def start_demo_portfolio(client: Client, task_queue: str) -> list[str]:
    """Start (or find running) every demo account; returns their workflow ids."""
    ids = []
    for account in demo_accounts():
        handle = (await open_account(client, account, task_queue=task_queue)).handle
        if account.account_id.endswith("-PHONE"):
            # Taken once: a number already marked unreachable ignores it at the next start.
            payload = SmsUndeliverable(reason=UNREACHABLE).model_dump(mode="json")
            await handle.signal(SignalName.SMS_UNDELIVERABLE, payload)
        ids.append(handle.id)
    logger.info("demo portfolio: %d accounts running", len(ids))
    return ids
