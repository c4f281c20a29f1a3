"""Who may do what on the collections floor: the console's roles and the actions each may take.

Agents work the phone queue and record what calls came to; specialists also act on the accounts handed to
them; supervisors may do everything an operator can, settling and closing included; compliance reads
everything and changes nothing; admins manage users. One table, so the console and its tests agree.

Anyone who talks to customers may record a complaint they hear (``OPEN_COMPLAINT``), so that its deadlines
start at once; answering it (``COMPLAINTS``: acknowledge, resolve) is the specialists' and supervisors'
work, because the answer commits the lender.
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    AGENT = "agent"
    SPECIALIST = "specialist"
    SUPERVISOR = "supervisor"
    COMPLIANCE = "compliance"
    ADMIN = "admin"


class Permission(StrEnum):
    READ = "read"
    """See accounts, timelines, queues and figures."""
    CALL_OUTCOME = "call_outcome"
    PROMISE = "promise"
    PAUSE = "pause"
    REPAYMENT = "repayment"
    CONTACT = "contact"
    OPEN_COMPLAINT = "open_complaint"
    """Record a complaint about how the lender collects, as it reaches the person."""
    COMPLAINTS = "complaints"
    """Acknowledge and resolve complaints."""
    SETTLE = "settle"
    CLOSE = "close"
    EXPERIMENTS = "experiments"
    MANAGE_USERS = "manage_users"


_ACCOUNT_WORK = frozenset(
    {
        Permission.READ,
        Permission.CALL_OUTCOME,
        Permission.PROMISE,
        Permission.PAUSE,
        Permission.CONTACT,
        Permission.OPEN_COMPLAINT,
    }
)

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: _ACCOUNT_WORK,
    Role.SPECIALIST: _ACCOUNT_WORK | {Permission.REPAYMENT, Permission.COMPLAINTS},
    Role.SUPERVISOR: _ACCOUNT_WORK
    | {
        Permission.REPAYMENT,
        Permission.COMPLAINTS,
        Permission.SETTLE,
        Permission.CLOSE,
        Permission.EXPERIMENTS,
    },
    Role.COMPLIANCE: frozenset({Permission.READ}),
    Role.ADMIN: frozenset(Permission),
}


def may(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]
