"""The ``Authorization`` header built from a credential in an environment variable.

One home for the probes (``http_json``) and the bot API sender: both take the secret
from the daemon's environment by name, and neither may let it reach a message. httpx
names the offending character of a header it refuses (a piece of the secret), so a
credential a header cannot carry is refused here first, by the variable's name only.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

__all__ = ["AUTH_KINDS", "CredentialUnusable", "authorization"]

#: The schemes a config may name.
AUTH_KINDS = ("basic", "bearer")


class CredentialUnusable(LookupError):
    """The variable is unset, empty, or holds what a header cannot carry.

    The message names the variable, never its value.
    """


def authorization(auth: str, env_name: str, environ: Mapping[str, str]) -> str:
    """The header's value for ``auth`` (``basic``: the variable holds ``user:password``;
    ``bearer``: a token).

    Raises:
        CredentialUnusable: see the class.
        ValueError: ``auth`` is not one of :data:`AUTH_KINDS` (the config validates it).
    """
    if auth not in AUTH_KINDS:
        raise ValueError(f"unknown auth {auth!r}")
    value = environ.get(env_name)
    if not value:
        raise CredentialUnusable(f"environment variable {env_name} is not set")
    if not (value.isascii() and value.isprintable()):
        # A bearer header cannot carry it; for basic, RFC 7617 allows UTF-8 only where
        # the server asks for it (FastAPI, so freqtrade, decodes ASCII): refused loudly
        # rather than sent in an encoding the server may take for a wrong password.
        raise CredentialUnusable(f"environment variable {env_name} holds more than printable ASCII")
    if auth == "bearer":
        return f"Bearer {value}"
    return "Basic " + base64.b64encode(value.encode("ascii")).decode("ascii")
