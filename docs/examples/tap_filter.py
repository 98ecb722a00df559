"""A ``tap_filter`` that masks secret fields of JSON messages before a tap shows them.

    from tap_filter import mask_secrets
    serve(handler, host, port, allow_tap=True, tap_filter=mask_secrets, control=...)

The server calls it for every message a tap is about to show, with the
connection and the whole message (str for text, bytes for binary), and shows
what it returns; None shows the message's size and direction but no payload.
"""

import json

SECRET_FIELDS = {"password", "token", "card_number", "ssn"}


def mask_secrets(connection, message):
    if isinstance(message, bytes):
        return None  # binary payloads are never shown
    try:
        data = json.loads(message)
    except ValueError:
        return message  # not JSON: shown as it is
    return json.dumps(_masked(data))


def _masked(value):
    if isinstance(value, dict):
        return {key: "***" if key in SECRET_FIELDS else _masked(item)
                for key, item in value.items()}
    if isinstance(value, list):
        return [_masked(item) for item in value]
    return value
