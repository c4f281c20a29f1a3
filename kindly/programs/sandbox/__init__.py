"""A local SMS gateway for demos and tests: keeps messages, shows inboxes, posts replies back."""

from kindly.programs.sandbox.app import SandboxSettings, create_sandbox_app
from kindly.programs.sandbox.store import Mailbox

__all__ = ["Mailbox", "SandboxSettings", "create_sandbox_app"]
