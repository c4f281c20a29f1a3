"""Every Temporal payload encrypted with AES-256-GCM: the payload codec and Kindly's data converter.

Account inputs carry the customer's name and phone number, activity inputs carry the number to text,
signals carry replies. Temporal stores all of them in workflow histories for as long as the account
lives and beyond (retention), and shows them to anyone who can read the namespace. The codec encrypts
each payload on the worker and the clients before it leaves the process, so Temporal (a cluster, its
database, Temporal Cloud, the Web UI) only ever holds ciphertext.

The format follows temporalio/samples-python ``encryption/codec.py`` (and the Go and TypeScript
samples) so other tools can read it: the whole serialized ``Payload`` proto (its metadata included,
e.g. ``encoding: json/plain``) is sealed as ``nonce (12 bytes) + ciphertext + tag`` into a new payload
with metadata ``encoding: binary/encrypted`` and ``encryption-key-id: <id>``. The id names the key in
the :class:`~kindly.keyring.KeyRing`: the current key encrypts, every key in the ring decrypts, which
is what makes rotation possible without touching stored histories.

Decoding passes through payloads that are not encrypted: histories written before encryption, and
values typed into ``temporal workflow signal --input`` by an operator whose CLI has no codec endpoint.
An encrypted payload that no key opens (a retired key id, tampering) raises
:class:`~kindly.errors.DecryptionError` naming the key id instead of silently handing on garbage.

Not covered by any codec, by Temporal's design: search attributes and workflow/activity ids, which the
server must read; Kindly keeps those free of personal data. Failure messages and stack traces are
not payloads either; :func:`data_converter` moves them into an encoded (hence encrypted) attribute.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

from kindly.errors import DecryptionError
from kindly.keyring import KeyRing

ENCODING_KEY = "encoding"
ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_KEY = "encryption-key-id"


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over whole payloads with the key ring's current key; decodes with any of its keys."""

    def __init__(self, keyring: KeyRing) -> None:
        super().__init__()
        self.keyring = keyring

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        key_id, sealed = self.keyring.encrypt(payload.SerializeToString())
        return Payload(
            metadata={ENCODING_KEY: ENCRYPTED_ENCODING, KEY_ID_KEY: key_id.encode()},
            data=sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        """The original payload; one without the encrypted encoding is returned as it is."""
        if not is_encrypted(payload):
            return payload
        key_id = payload.metadata.get(KEY_ID_KEY, b"").decode("utf-8", "replace")
        if not key_id:
            raise DecryptionError(f"encrypted payload without the {KEY_ID_KEY!r} metadata")
        plaintext = self.keyring.decrypt(key_id, payload.data)
        try:
            return Payload.FromString(plaintext)
        except DecodeError as err:  # only a key-holder could have sealed it: a bug, not tampering
            raise DecryptionError(f"payload decrypted with key {key_id!r} is not a Payload") from err


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get(ENCODING_KEY) == ENCRYPTED_ENCODING


def data_converter(keyring: KeyRing) -> DataConverter:
    """Kindly's one data converter: pydantic JSON, then encryption; failures' messages encoded too.

    The worker, every client (CLI, API, demo, tests) and the replay test use it, so what one writes
    the others read. ``DefaultFailureConverterWithEncodedAttributes`` moves an error's message and
    stack trace into an encoded attribute (the codec encrypts it): an exception's text is whatever
    the raising code or library put there (some quote the value they refused), and a stack trace
    quotes source lines; neither goes to the server in clear. Without the codec server the Web UI
    and the CLI show such an error as ``Encoded failure``.
    """
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keyring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
