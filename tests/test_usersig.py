"""UserSig v2: our signatures against the vendor's tls-sig-api-v2, and the server checks."""

from __future__ import annotations

import gc
import time

import pytest
import TLSSigAPIv2
from hypothesis import given, settings
from hypothesis import strategies as st

from tencent_chat_robots import AuthenticationError, generate_usersig, verify_usersig
from tencent_chat_robots._auth import UserSigProvider
from tencent_chat_robots._redact import Secret, live_secrets

SDKAPPID = 1400000000
KEY = "5bd2850fff3ecb11d7c805251c51ee463a25727bddc2385f3fa8bfee1bb93b5e"
NOW = 1_760_000_000


def test_identical_to_the_vendor_package_for_the_same_inputs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(TLSSigAPIv2.time, "time", lambda: NOW + 0.7)
    theirs = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, KEY).gen_sig("administrator", 86400)
    ours = generate_usersig(SDKAPPID, KEY, "administrator", 86400, now=NOW)
    assert ours == theirs


@settings(max_examples=50, deadline=None)
@given(
    identifier=st.text(min_size=1, max_size=40).filter(lambda s: "\n" not in s),
    expire=st.integers(min_value=1, max_value=10 * 365 * 86400),
)
def test_we_verify_what_the_vendor_package_signs(identifier: str, expire: int) -> None:
    theirs = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, KEY).gen_sig(identifier, expire)
    verify_usersig(theirs, sdkappid=SDKAPPID, secret_key=KEY, identifier=identifier)


def test_we_verify_vendor_signatures_with_userbuf() -> None:
    theirs = TLSSigAPIv2.TLSSigAPIv2(SDKAPPID, KEY).gen_sig_with_userbuf("admin", 600, b"abc")
    verify_usersig(theirs, sdkappid=SDKAPPID, secret_key=KEY, identifier="admin")


def test_round_trip_and_expiry_boundary() -> None:
    sig = generate_usersig(SDKAPPID, KEY, "administrator", 100, now=NOW)
    verify_usersig(sig, sdkappid=SDKAPPID, secret_key=KEY, identifier="administrator", now=NOW)
    verify_usersig(sig, sdkappid=SDKAPPID, secret_key=KEY, identifier="administrator", now=NOW + 99)
    with pytest.raises(AuthenticationError) as caught:
        verify_usersig(
            sig, sdkappid=SDKAPPID, secret_key=KEY, identifier="administrator", now=NOW + 100
        )
    assert caught.value.code == 70001


def test_signature_alphabet_is_url_safe() -> None:
    sig = generate_usersig(SDKAPPID, KEY, "administrator", now=NOW)
    assert set(sig) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789*-_")


@pytest.mark.parametrize(
    ("mutate", "code"),
    [
        (lambda: "not a signature!", 70003),
        (lambda: "", 70003),
        (lambda: generate_usersig(SDKAPPID + 1, KEY, "administrator", now=NOW), 70014),
        (lambda: generate_usersig(SDKAPPID, KEY, "someone", now=NOW), 70013),
        (lambda: generate_usersig(SDKAPPID, "other-key", "administrator", now=NOW), 70009),
        (lambda: generate_usersig(SDKAPPID, KEY, "administrator", 10, now=NOW - 11), 70001),
    ],
)
def test_verification_failures_answer_the_server_codes(mutate, code: int) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(AuthenticationError) as caught:
        verify_usersig(
            mutate(), sdkappid=SDKAPPID, secret_key=KEY, identifier="administrator", now=NOW
        )
    assert caught.value.code == code


def test_tampered_payload_is_rejected() -> None:
    import base64
    import json
    import zlib

    sig = generate_usersig(SDKAPPID, KEY, "administrator", 100, now=NOW)
    raw = sig.translate(str.maketrans("*-_", "+/="))
    doc = json.loads(zlib.decompress(base64.b64decode(raw)))
    doc["TLS.expire"] = 10**9  # stretch the lifetime without the key
    forged = base64.b64encode(zlib.compress(json.dumps(doc).encode())).decode()
    forged = forged.translate(str.maketrans("+/=", "*-_"))
    with pytest.raises(AuthenticationError) as caught:
        verify_usersig(
            forged, sdkappid=SDKAPPID, secret_key=KEY, identifier="administrator", now=NOW
        )
    assert caught.value.code == 70009


def test_provider_caches_and_renews_at_half_life() -> None:
    clock = [float(NOW)]
    provider = UserSigProvider(
        sdkappid=SDKAPPID,
        admin="administrator",
        secret_key=Secret(KEY),
        lifetime=1000,
        clock=lambda: clock[0],
    )
    first = provider.current()
    clock[0] += 499
    assert provider.current() == first
    clock[0] += 2
    renewed = provider.current()
    assert renewed != first
    verify_usersig(
        renewed,
        sdkappid=SDKAPPID,
        secret_key=KEY,
        identifier="administrator",
        now=int(clock[0]) + 998,
    )
    assert KEY not in repr(provider)
    assert first not in repr(provider)
    # Both signatures stay valid for their lifetime: the scrubbers must know both.
    assert {KEY, first, renewed} <= set(provider.secrets())
    assert {KEY, first, renewed} <= set(live_secrets())


def test_provider_with_fixed_signature_never_changes_it() -> None:
    provider = UserSigProvider(sdkappid=SDKAPPID, admin="a", usersig=Secret("fixed"))
    provider.renew()
    assert provider.current() == "fixed"
    assert not provider.can_renew
    assert list(provider.secrets()) == ["fixed"]


def test_a_provider_gone_is_no_longer_listed() -> None:
    provider = UserSigProvider(sdkappid=SDKAPPID, admin="a", usersig=Secret("gone-soon"))
    assert "gone-soon" in live_secrets()
    del provider
    gc.collect()
    assert "gone-soon" not in live_secrets()


def test_generated_now_is_valid_now() -> None:
    sig = generate_usersig(SDKAPPID, KEY, "administrator")
    verify_usersig(
        sig, sdkappid=SDKAPPID, secret_key=KEY, identifier="administrator", now=int(time.time())
    )


def test_a_signature_hiding_absurdly_nested_json_is_unparsable() -> None:
    import base64
    import zlib

    nested = base64.b64encode(zlib.compress(b"[" * 100_000)).decode()
    with pytest.raises(AuthenticationError) as caught:
        verify_usersig(
            nested.translate(str.maketrans("+/=", "*-_")),
            sdkappid=SDKAPPID,
            secret_key=KEY,
            identifier="administrator",
        )
    assert caught.value.code == 70003
