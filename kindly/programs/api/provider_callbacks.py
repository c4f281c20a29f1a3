"""The SMS providers' own pushes: Alibaba Cloud's and Tencent Cloud's delivery reports and customers'
replies, in their shapes, at ``/callbacks/<provider>/<secret>/...``.

* ``callbacks_aliyun``: ``POST /callbacks/aliyun/{secret}/SmsReport`` and ``.../SmsUp``;
* ``callbacks_tencent``: ``POST /callbacks/tencent/{secret}/status`` and ``.../reply``;
* ``callback_batches``: the path secret (``Settings.sms_callback_secret``), phone numbers to E.164,
  batches read item by item, and the providers' answers;
* ``callback_routing``: each report and reply routed through the code of Kindly's own receipt and
  inbound-SMS webhooks (so dedupe, opt-outs and ``sms_undeliverable`` behave the same).

``router`` holds all four routes (docs/http-api.md, "Provider callbacks"). The secret is in every path,
so the access log writes ``/callbacks/<provider>/…/...`` instead (as it does for the customers' links).
"""

from __future__ import annotations

from fastapi import APIRouter

from kindly.programs.api import callbacks_aliyun, callbacks_tencent
from kindly.programs.selfservice.guards import redact_access_log

for _provider in ("aliyun", "tencent"):
    redact_access_log(f"/callbacks/{_provider}")

router = APIRouter()
router.include_router(callbacks_aliyun.router)
router.include_router(callbacks_tencent.router)
