"""Placeholder: Aliyun Cloud SMS through its official SDK."""

from __future__ import annotations

from activities.sms_providers import OutgoingSms, ProviderReceipt
from kindly.settings import Settings


class AliyunSmsProvider:
    name = "aliyun"

    @classmethod
    def from_settings(cls, settings: Settings) -> AliyunSmsProvider:
        return cls()

    async def send(self, sms: OutgoingSms) -> ProviderReceipt:
        raise NotImplementedError
