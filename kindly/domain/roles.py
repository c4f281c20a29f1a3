"""Who may do what on the collections floor: the console's roles and the actions each may take.

Agents work the phone queue and record what calls came to; specialists also act on the accounts handed to
them; supervisors may do everything an operator can, settling and closing included; compliance reads
everything and changes nothing; admins manage users. One table, so the console and its tests agree.
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
    SETTLE = "settle"
    CLOSE = "close"
    EXPERIMENTS = "experiments"
    MANAGE_USERS = "manage_users"


_ACCOUNT_WORK = frozenset(
    {Permission.READ, Permission.CALL_OUTCOME, Permission.PROMISE, Permission.PAUSE, Permission.CONTACT}
)

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.AGENT: _ACCOUNT_WORK,
    Role.SPECIALIST: _ACCOUNT_WORK | {Permission.REPAYMENT},
    Role.SUPERVISOR: _ACCOUNT_WORK
    | {Permission.REPAYMENT, Permission.SETTLE, Permission.CLOSE, Permission.EXPERIMENTS},
    Role.COMPLIANCE: frozenset({Permission.READ}),
    Role.ADMIN: frozenset(Permission),
}


def may(role: Role, permission: Permission) -> bool:
    return permission in PERMISSIONS[role]
