"""The verifiers' HMAC-SHA256, keyed once and copied per message, gives RFC 4231's known
answers and `hmac.digest`'s bytes for any key, however many messages it has signed."""

from __future__ import annotations

import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vlmhooks.errors import SignatureInvalid
from vlmhooks.trust.signatures import VlmrunVerifier

# RFC 4231, section 4: test cases 1, 2, 3, 4, 6 (a key longer than the block) and 7.
RFC_4231 = [
    (
        b"\x0b" * 20,
        b"Hi There",
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
    ),
    (
        b"Jefe",
        b"what do ya want for nothing?",
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
    ),
    (
        b"\xaa" * 20,
        b"\xdd" * 50,
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
    ),
    (
        bytes(range(1, 26)),
        b"\xcd" * 50,
        "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
    ),
    (
        b"\xaa" * 131,
        b"Test Using Larger Than Block-Size Key - Hash Key First",
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
    ),
    (
        b"\xaa" * 131,
        b"This is a test using a larger than block-size key and a larger than block-size "
        b"data. The key needs to be hashed before being used by the HMAC algorithm.",
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2",
    ),
]


@pytest.mark.parametrize(("key", "message", "expected"), RFC_4231)
def test_rfc_4231_known_answers(key: bytes, message: bytes, expected: str) -> None:
    verifier = VlmrunVerifier((key,))
    verifier.verify(message, "sha256=" + expected)
    verifier.verify(message, "sha256=" + expected)  # the keyed state is copied, not consumed
    with pytest.raises(SignatureInvalid):
        verifier.verify(message + b"!", "sha256=" + expected)


@given(key=st.binary(max_size=200), messages=st.lists(st.binary(max_size=3000), max_size=3))
def test_equals_the_standard_library_for_any_key_and_message(
    key: bytes, messages: list[bytes]
) -> None:
    verifier = VlmrunVerifier((key,))
    for message in messages:
        verifier.verify(message, "sha256=" + hmac.digest(key, message, "sha256").hex())


def test_repr_hides_the_key() -> None:
    assert "Jefe" not in repr(VlmrunVerifier((b"Jefe",)))
