from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from vlmhooks.errors import ConfigError, SignatureInvalid, TimestampOutOfTolerance
from vlmhooks.trust.signatures import (
    StandardWebhookVerdict,
    parse_standard_webhook_secret,
    sign_standard_webhook,
    sign_vlmrun,
    standard_webhook_headers,
    verify_standard_webhook,
    verify_vlmrun_signature,
)

# --- VLM Run: X-VLMRun-Signature -------------------------------------------------------------

VLM_SECRET = "It's a Secret to Everybody"
VLM_BODY = b"Hello, World!"
VLM_HEX = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
VLM_HEADER = "sha256=" + VLM_HEX


def test_vlmrun_known_answer_sign() -> None:
    assert sign_vlmrun(VLM_SECRET, VLM_BODY) == VLM_HEADER


def test_vlmrun_known_answer_verifies() -> None:
    verify_vlmrun_signature(VLM_BODY, VLM_HEADER, [VLM_SECRET])


def test_vlmrun_upper_case_hex_verifies() -> None:
    verify_vlmrun_signature(VLM_BODY, "sha256=" + VLM_HEX.upper(), [VLM_SECRET])


def test_vlmrun_rotation_any_secret_verifies() -> None:
    verify_vlmrun_signature(VLM_BODY, VLM_HEADER, ["newer-secret", VLM_SECRET])
    verify_vlmrun_signature(VLM_BODY, VLM_HEADER, [VLM_SECRET, "newer-secret"])


def test_vlmrun_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureInvalid):
        verify_vlmrun_signature(VLM_BODY, VLM_HEADER, ["not it", "nor this"])


@pytest.mark.parametrize("body", [b"Hello, World", b"Hello, World!\n", b"hello, World!", b""])
def test_vlmrun_tampered_body_is_rejected(body: bytes) -> None:
    with pytest.raises(SignatureInvalid):
        verify_vlmrun_signature(body, VLM_HEADER, [VLM_SECRET])


def test_vlmrun_non_utf8_body_verifies() -> None:
    body = b"\xff\xfe"
    expected = hmac.new(VLM_SECRET.encode(), body, hashlib.sha256).hexdigest()
    header = sign_vlmrun(VLM_SECRET, body)
    assert header == "sha256=" + expected
    verify_vlmrun_signature(body, header, [VLM_SECRET])


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="missing"),
        pytest.param("", id="empty"),
        pytest.param(VLM_HEX, id="no-prefix"),
        pytest.param("sha256", id="prefix-only-no-equals"),
        pytest.param("sha256=", id="prefix-only"),
        pytest.param("sha1=" + VLM_HEX, id="wrong-prefix"),
        pytest.param("SHA256=" + VLM_HEX, id="upper-case-prefix"),
        pytest.param("sha256:" + VLM_HEX, id="colon"),
        pytest.param(" sha256=" + VLM_HEX, id="leading-space"),
        pytest.param("sha256=" + VLM_HEX + " ", id="trailing-space"),
        pytest.param("sha256=" + VLM_HEX[:-2], id="too-short"),
        pytest.param("sha256=" + VLM_HEX + "00", id="too-long"),
        pytest.param("sha256=" + "zz" + VLM_HEX[2:], id="non-hex"),
        pytest.param("sha256=" + VLM_HEX[:30] + " " + VLM_HEX[31:], id="space-inside"),
        pytest.param("sha256=" + "\u0660" * 64, id="non-ascii-digits"),
        pytest.param("sha256=" + VLM_HEX[:-1] + "\udcff", id="surrogate"),
        pytest.param("sha256=" + base64.b64encode(bytes.fromhex(VLM_HEX)).decode(), id="base64"),
    ],
)
def test_vlmrun_malformed_header_is_rejected(header: str | None) -> None:
    with pytest.raises(SignatureInvalid):
        verify_vlmrun_signature(VLM_BODY, header, [VLM_SECRET])


@pytest.mark.parametrize("secrets", [[], "one-string", [""]])
def test_vlmrun_bad_secret_list_is_a_config_error(secrets: list[str]) -> None:
    with pytest.raises(ConfigError):
        verify_vlmrun_signature(VLM_BODY, VLM_HEADER, secrets)


# --- Standard Webhooks ------------------------------------------------------------------------

SW_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SW_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SW_TS = 1614265330
SW_BODY = b'{"test": 2432232314}'
SW_V1 = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

# ed25519 is deterministic: the signature below was computed once from this seed.
SEED = bytes(range(32))
SW_SK = "whsk_" + base64.b64encode(SEED).decode()
SW_PK = "whpk_A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
SW_V1A = (
    "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ=="
)
OTHER_WHSEC = "whsec_" + base64.b64encode(b"another symmetric secret 32 bytes").decode()


def sw_headers(
    signature: str = SW_V1, msg_id: str = SW_ID, timestamp: str = str(SW_TS)
) -> dict[str, str]:
    return {"webhook-id": msg_id, "webhook-timestamp": timestamp, "webhook-signature": signature}


def verify(
    headers: dict[str, str],
    secrets: list[str] | None = None,
    *,
    body: bytes = SW_BODY,
    now: float = SW_TS,
    tolerance_seconds: int = 300,
) -> StandardWebhookVerdict:
    return verify_standard_webhook(
        body,
        headers,
        [SW_SECRET] if secrets is None else secrets,
        now=now,
        tolerance_seconds=tolerance_seconds,
    )


def test_standard_known_answer_sign() -> None:
    assert sign_standard_webhook(SW_SECRET, SW_ID, SW_TS, SW_BODY) == SW_V1


def test_standard_known_answer_verifies_and_returns_verdict() -> None:
    assert verify(sw_headers()) == StandardWebhookVerdict(msg_id=SW_ID, timestamp=SW_TS)


def test_standard_header_names_are_case_insensitive() -> None:
    headers = {"Webhook-Id": SW_ID, "WEBHOOK-TIMESTAMP": str(SW_TS), "webhook-Signature": SW_V1}
    assert verify(headers).msg_id == SW_ID


def test_standard_webhook_headers_round_trip() -> None:
    headers = standard_webhook_headers(SW_SECRET, SW_ID, SW_TS, SW_BODY)
    assert headers == sw_headers()
    assert verify(headers).timestamp == SW_TS


def test_standard_v1a_known_answer_sign() -> None:
    assert sign_standard_webhook(SW_SK, SW_ID, SW_TS, SW_BODY) == SW_V1A


def test_standard_v1a_known_answer_verifies_with_cryptography_directly() -> None:
    public_key = Ed25519PublicKey.from_public_bytes(base64.b64decode(SW_PK.removeprefix("whpk_")))
    signature = base64.b64decode(SW_V1A.removeprefix("v1a,"))
    public_key.verify(signature, f"{SW_ID}.{SW_TS}.".encode() + SW_BODY)


def test_standard_v1a_verifies_with_whpk() -> None:
    assert verify(sw_headers(SW_V1A), [SW_PK]).msg_id == SW_ID


def test_standard_v1a_accepts_libsodium_64_byte_secret_key() -> None:
    public = base64.b64decode(SW_PK.removeprefix("whpk_"))
    libsodium_sk = "whsk_" + base64.b64encode(SEED + public).decode()
    assert sign_standard_webhook(libsodium_sk, SW_ID, SW_TS, SW_BODY) == SW_V1A


def test_standard_v1a_is_not_accepted_by_whsec_and_v1_not_by_whpk() -> None:
    with pytest.raises(SignatureInvalid):
        verify(sw_headers(SW_V1A), [SW_SECRET])
    with pytest.raises(SignatureInvalid):
        verify(sw_headers(SW_V1), [SW_PK])


def test_standard_mixed_secrets_accept_either_scheme() -> None:
    verify(sw_headers(SW_V1), [SW_PK, SW_SECRET])
    verify(sw_headers(SW_V1A), [SW_SECRET, SW_PK])


def test_standard_rotation_old_secret_still_verifies() -> None:
    verify(sw_headers(), [OTHER_WHSEC, SW_SECRET])


def test_standard_wrong_secret_is_rejected() -> None:
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(), [OTHER_WHSEC])
    assert excinfo.type is SignatureInvalid


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param(sign_standard_webhook(OTHER_WHSEC, SW_ID, SW_TS, SW_BODY) + " " + SW_V1),
        pytest.param(SW_V1 + " " + sign_standard_webhook(OTHER_WHSEC, SW_ID, SW_TS, SW_BODY)),
        pytest.param("v1," + base64.b64encode(bytes(32)).decode() + " " + SW_V1A + " " + SW_V1),
        pytest.param("v2,c29tZXRoaW5nIG5ldw== " + SW_V1, id="unknown-version-skipped"),
    ],
)
def test_standard_several_signatures_one_valid(signature: str) -> None:
    verify(sw_headers(signature), [SW_SECRET])


@pytest.mark.parametrize(
    ("body", "msg_id", "timestamp"),
    [
        pytest.param(SW_BODY + b" ", SW_ID, str(SW_TS), id="body"),
        pytest.param(SW_BODY, SW_ID + "x", str(SW_TS), id="msg-id"),
        pytest.param(SW_BODY, SW_ID, str(SW_TS + 1), id="timestamp"),
        pytest.param(SW_BODY, SW_ID, "0" + str(SW_TS), id="timestamp-leading-zero"),
    ],
)
def test_standard_tampering_is_rejected(body: bytes, msg_id: str, timestamp: str) -> None:
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(SW_V1, msg_id, timestamp), body=body)
    assert excinfo.type is SignatureInvalid


def test_standard_dot_in_msg_id_cannot_splice_signed_content() -> None:
    # Signed as id "msg_1", body "<ts>.{}"; replayed as id "msg_1.<ts>", body "{}": same bytes.
    body = f"{SW_TS}.{{}}".encode()
    signature = sign_standard_webhook(SW_SECRET, "msg_1", SW_TS, body)
    verify(sw_headers(signature, "msg_1"), body=body)
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(signature, f"msg_1.{SW_TS}"), body=b"{}")
    assert excinfo.type is SignatureInvalid


def test_standard_non_utf8_body_verifies() -> None:
    body = b"\xff\xfe"
    signature = sign_standard_webhook(SW_SECRET, SW_ID, SW_TS, body)
    key = base64.b64decode(SW_SECRET.removeprefix("whsec_"))
    mac = hmac.new(key, SW_ID.encode() + b"." + str(SW_TS).encode() + b"." + body, hashlib.sha256)
    assert signature == "v1," + base64.b64encode(mac.digest()).decode()
    verify(sw_headers(signature), body=body)
    with pytest.raises(SignatureInvalid):
        verify(sw_headers(signature), body=b"\xff\xff")


def test_standard_non_utf8_body_verifies_v1a() -> None:
    signature = sign_standard_webhook(SW_SK, SW_ID, SW_TS, b"\xff\xfe")
    verify(sw_headers(signature), [SW_PK], body=b"\xff\xfe")


@pytest.mark.parametrize(
    ("now", "tolerance", "ok"),
    [
        (SW_TS + 300, 300, True),
        (SW_TS + 300.5, 300, False),
        (SW_TS + 301, 300, False),
        (SW_TS - 300, 300, True),
        (SW_TS - 300.5, 300, False),
        (SW_TS - 301, 300, False),
        (SW_TS + 10, 10, True),
        (SW_TS + 11, 10, False),
        (SW_TS - 11, 10, False),
        (SW_TS, 0, True),
        (SW_TS + 1, 0, False),
        (float("nan"), 300, False),
    ],
)
def test_standard_tolerance_boundaries(now: float, tolerance: int, ok: bool) -> None:
    if ok:
        verify(sw_headers(), now=now, tolerance_seconds=tolerance)
    else:
        with pytest.raises(TimestampOutOfTolerance):
            verify(sw_headers(), now=now, tolerance_seconds=tolerance)


def test_standard_default_tolerance_is_300_seconds() -> None:
    verify_standard_webhook(SW_BODY, sw_headers(), [SW_SECRET], now=SW_TS + 300)
    with pytest.raises(TimestampOutOfTolerance):
        verify_standard_webhook(SW_BODY, sw_headers(), [SW_SECRET], now=SW_TS + 301)


def test_standard_stale_forged_message_is_still_rejected() -> None:
    with pytest.raises(SignatureInvalid):
        verify(sw_headers("v1," + base64.b64encode(bytes(32)).decode()), now=SW_TS + 10_000)


@pytest.mark.parametrize(
    "timestamp",
    [
        "1614265330.5",
        "-1",
        " 12",
        "12 ",
        "",
        "abc",
        "+1614265330",
        "1.6e9",
        "0x60375e72",
        "1614265330\n",
        "\u0661\u0666\u0661\u0664",  # Arabic-Indic digits: str.isdigit() says yes
        "1" * 16,
        "\udcff",
    ],
)
def test_standard_malformed_timestamp_is_rejected(timestamp: str) -> None:
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(timestamp=timestamp))
    assert excinfo.type is SignatureInvalid


@pytest.mark.parametrize(
    "msg_id",
    ["", "msg.1", "msg 1", " msg", "msg\t1", "msg\xff", "msg\udcff", "\u00e9", "m" * 257],
)
def test_standard_malformed_msg_id_is_rejected(msg_id: str) -> None:
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(msg_id=msg_id))
    assert excinfo.type is SignatureInvalid


V1_B64 = SW_V1.removeprefix("v1,")
V1A_B64 = SW_V1A.removeprefix("v1a,")


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("", id="empty"),
        pytest.param(" ", id="space"),
        pytest.param("garbage", id="garbage"),
        pytest.param("v1", id="version-only"),
        pytest.param("v1,", id="empty-signature"),
        pytest.param("," + V1_B64, id="empty-version"),
        pytest.param(V1_B64, id="no-version"),
        pytest.param("v1," + V1_B64 + ",", id="trailing-comma"),
        pytest.param("v1,," + V1_B64, id="double-comma"),
        pytest.param("v1," + V1_B64 + ",v1", id="extra-comma-field"),
        pytest.param("v1=" + V1_B64, id="equals-instead-of-comma"),
        pytest.param("v1,!!!!" + V1_B64[4:], id="bad-base64-chars"),
        pytest.param("v1," + V1_B64.rstrip("="), id="missing-padding"),
        pytest.param("v1," + V1_B64 + "=", id="extra-padding"),
        pytest.param("v1," + V1_B64.replace("+", "-").replace("/", "_"), id="urlsafe-alphabet"),
        pytest.param("v1," + base64.b64encode(bytes(16)).decode(), id="v1-too-short"),
        pytest.param("v1," + base64.b64encode(bytes(33)).decode(), id="v1-too-long"),
        pytest.param("v1a," + V1_B64, id="v1a-wrong-length"),
        pytest.param("v1," + V1A_B64, id="v1-with-v1a-length"),
        pytest.param("v2," + V1_B64, id="unknown-version-only"),
        pytest.param("V1," + V1_B64, id="upper-case-version"),
        pytest.param("v1,\u00e9" + V1_B64[1:], id="non-ascii"),
        pytest.param("v1," + V1_B64[:-1] + "\udcff", id="surrogate"),
        pytest.param("v1," + V1_B64 + "\tv1," + V1_B64, id="tab-separator"),
    ],
)
def test_standard_malformed_signature_header_is_rejected(signature: str) -> None:
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(signature))
    assert excinfo.type is SignatureInvalid


@pytest.mark.parametrize(
    "signature",
    [
        pytest.param("v1,AAAA " + SW_V1, id="short-entry-then-valid"),
        pytest.param("garbage " + SW_V1, id="garbage-then-valid"),
        pytest.param(SW_V1 + " garbage", id="valid-then-garbage"),
        pytest.param("v1," + V1_B64 + " v1,@@@", id="valid-then-bad-base64"),
        pytest.param("v1a," + V1_B64 + " " + SW_V1, id="wrong-length-v1a-then-valid"),
        pytest.param("V1," + V1_B64 + " " + SW_V1, id="upper-case-version-then-valid"),
        pytest.param(",abc " + SW_V1, id="empty-version-then-valid"),
        pytest.param("v2, " + SW_V1, id="empty-payload-then-valid"),
        pytest.param("v1," + V1_B64 + " ", id="trailing-space"),
        pytest.param(" v1," + V1_B64, id="leading-space"),
        pytest.param("v1," + V1_B64 + "  " + SW_V1, id="double-space"),
        pytest.param(" ".join(["v2,eA=="] * 40 + ["x"] * 40 + [SW_V1]), id="many-skipped-entries"),
    ],
)
def test_standard_skips_malformed_short_and_unknown_entries(signature: str) -> None:
    # The reference library's reading of the list: any entry that verifies accepts.
    assert verify(sw_headers(signature)) == StandardWebhookVerdict(msg_id=SW_ID, timestamp=SW_TS)


def test_standard_tries_at_most_sixteen_well_formed_entries() -> None:
    wrong = "v1," + base64.b64encode(bytes(32)).decode()
    verify(sw_headers(" ".join([wrong] * 15 + [SW_V1])))
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(" ".join([wrong] * 16 + [SW_V1])))
    assert excinfo.value.detail == "no webhook-signature entry matches a configured secret"


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        ("v1," + base64.b64encode(bytes(16)).decode(), "v1 signature must be 32 bytes"),
        ("v1a," + V1_B64, "v1a signature must be 64 bytes"),
    ],
)
def test_standard_wrong_length_signature_reason(signature: str, reason: str) -> None:
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(sw_headers(signature), [SW_SECRET, SW_PK])
    assert excinfo.value.detail == reason


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_standard_missing_header_is_rejected(missing: str) -> None:
    headers = sw_headers()
    del headers[missing]
    with pytest.raises(SignatureInvalid) as excinfo:
        verify(headers)
    assert missing in excinfo.value.detail


def test_standard_no_headers_is_rejected() -> None:
    with pytest.raises(SignatureInvalid):
        verify({})


def test_standard_conflicting_duplicate_headers_are_rejected() -> None:
    headers = sw_headers() | {"Webhook-Id": "msg_other"}
    with pytest.raises(SignatureInvalid):
        verify(headers)


def test_standard_identical_duplicate_headers_are_accepted() -> None:
    verify(sw_headers() | {"Webhook-Id": SW_ID})


@settings(max_examples=300, database=None, deadline=None)
@given(
    msg_id=st.text(max_size=40),
    timestamp=st.one_of(st.text(max_size=20), st.integers(SW_TS - 400, SW_TS + 400).map(str)),
    signature=st.one_of(
        st.text(max_size=200),
        st.lists(
            st.tuples(st.sampled_from(["v1", "v1a", "v2", ""]), st.text(max_size=90)),
            max_size=4,
        ).map(lambda parts: " ".join(f"{v},{s}" for v, s in parts)),
    ),
    body=st.binary(max_size=64),
)
def test_standard_arbitrary_headers_only_raise_signature_invalid(
    msg_id: str, timestamp: str, signature: str, body: bytes
) -> None:
    with pytest.raises(SignatureInvalid):
        verify(sw_headers(signature, msg_id, timestamp), [SW_SECRET, SW_PK], body=body)


@settings(max_examples=200, database=None, deadline=None)
@given(header=st.one_of(st.none(), st.text(max_size=80)), body=st.binary(max_size=64))
def test_vlmrun_arbitrary_headers_only_raise_signature_invalid(
    header: str | None, body: bytes
) -> None:
    with pytest.raises(SignatureInvalid):
        verify_vlmrun_signature(body, header, [VLM_SECRET])


# --- secrets ----------------------------------------------------------------------------------


def test_parse_secret_kinds_and_repr_hides_key() -> None:
    parsed = parse_standard_webhook_secret(SW_SECRET)
    assert parsed.kind == "whsec"
    assert parsed.key == base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert "MfKQ" not in repr(parsed)
    assert str(parsed.key) not in repr(parsed)
    assert parse_standard_webhook_secret(SW_PK).kind == "whpk"
    assert parse_standard_webhook_secret(SW_SK).key == SEED


def test_parse_secret_accepts_unpadded_base64() -> None:
    raw = b"twenty-five bytes secret!"
    unpadded = base64.b64encode(raw).decode().rstrip("=")
    assert parse_standard_webhook_secret("whsec_" + unpadded).key == raw


@pytest.mark.parametrize(
    "secret",
    [
        pytest.param("", id="empty"),
        pytest.param("whsec_", id="empty-key"),
        pytest.param("whsec", id="no-underscore"),
        pytest.param("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id="no-prefix"),
        pytest.param("whsek_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id="typo-prefix"),
        pytest.param("WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", id="upper-case-prefix"),
        pytest.param("whsec_MfKQ9r8GKYqr!!!!PD8ILPZIo2LaLaSw", id="bad-base64"),
        pytest.param("whsec_MfKQ9", id="impossible-length"),
        pytest.param("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS\u00e9", id="non-ascii"),
        pytest.param("whpk_" + base64.b64encode(bytes(31)).decode(), id="whpk-short"),
        pytest.param("whpk_" + base64.b64encode(bytes(33)).decode(), id="whpk-long"),
        pytest.param("whsk_" + base64.b64encode(bytes(31)).decode(), id="whsk-short"),
        pytest.param("whsk_" + base64.b64encode(bytes(48)).decode(), id="whsk-48"),
        pytest.param("whsk_" + base64.b64encode(SEED + bytes(32)).decode(), id="whsk-bad-public"),
    ],
)
def test_parse_bad_secret_is_a_config_error(secret: str) -> None:
    with pytest.raises(ConfigError):
        parse_standard_webhook_secret(secret)


@pytest.mark.parametrize(
    "secrets", [[], "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", [SW_SECRET, "whsec_!!"]]
)
def test_verify_with_bad_secret_list_is_a_config_error(secrets: list[str]) -> None:
    with pytest.raises(ConfigError):
        verify(sw_headers(), secrets)


def test_verify_with_negative_tolerance_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        verify(sw_headers(), tolerance_seconds=-1)


def test_sign_with_public_key_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        sign_standard_webhook(SW_PK, SW_ID, SW_TS, SW_BODY)


@pytest.mark.parametrize(("msg_id", "timestamp"), [("msg.1", SW_TS), ("", SW_TS), (SW_ID, -1)])
def test_sign_refuses_what_verify_would_reject(msg_id: str, timestamp: int) -> None:
    with pytest.raises(ValueError):
        sign_standard_webhook(SW_SECRET, msg_id, timestamp, SW_BODY)
