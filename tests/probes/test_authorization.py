"""The Authorization header from an environment variable: the value round-trips, and a
credential that is missing or unusable is refused by the variable's name alone."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from autoheal.probes.authorization import CredentialUnusable, authorization

pytestmark = [pytest.mark.timeout(60)]

TOKENS = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1)


@given(TOKENS)
def test_a_printable_bearer_token_is_sent_as_it_is(token: str) -> None:
    assert authorization("bearer", "TOKEN", {"TOKEN": token}) == f"Bearer {token}"


@given(TOKENS)
def test_a_basic_credential_decodes_back_to_itself(credential: str) -> None:
    header = authorization("basic", "CRED", {"CRED": credential})
    scheme, _, encoded = header.partition(" ")
    assert scheme == "Basic" and encoded.isascii()
    assert base64.b64decode(encoded).decode("ascii") == credential


@pytest.mark.parametrize("auth", ["basic", "bearer"])
@pytest.mark.parametrize("environ", [{}, {"SECRET_VAR": ""}])
def test_an_unset_or_empty_variable_is_refused_by_name(auth: str, environ: dict[str, str]) -> None:
    with pytest.raises(CredentialUnusable, match="SECRET_VAR is not set"):
        authorization(auth, "SECRET_VAR", environ)


@pytest.mark.parametrize("auth", ["basic", "bearer"])
@given(token=st.text(min_size=1).filter(lambda s: not (s.isascii() and s.isprintable())))
def test_a_credential_beyond_printable_ascii_is_refused_without_showing_it(
    auth: str, token: str
) -> None:
    with pytest.raises(CredentialUnusable) as caught:
        authorization(auth, "TOKEN_VAR", {"TOKEN_VAR": token})
    assert "TOKEN_VAR" in str(caught.value) and token not in str(caught.value)


def test_an_unknown_scheme_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        authorization("digest", "X", {"X": "y"})
