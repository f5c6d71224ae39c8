"""The store's cryptographic primitives as pure functions: sealing, associated data, scrypt parameters."""

from __future__ import annotations

import pytest

from launcher import crypto

KEY = bytes(range(32))
STORE_ID = b"s" * 16


def test_seal_round_trips_and_never_repeats_a_nonce():
    ad = crypto.secret_ad(STORE_ID, "db", 1)
    first, second = crypto.seal(KEY, b"hunter2", ad), crypto.seal(KEY, b"hunter2", ad)
    assert first[: crypto.NONCE_BYTES] != second[: crypto.NONCE_BYTES]
    assert b"hunter2" not in first
    assert len(first) == crypto.NONCE_BYTES + len(b"hunter2") + crypto.TAG_BYTES
    assert crypto.unseal(KEY, first, ad) == crypto.unseal(KEY, second, ad) == b"hunter2"


@pytest.mark.parametrize(
    "other_ad",
    [
        crypto.secret_ad(STORE_ID, "db2", 1),  # another name
        crypto.secret_ad(STORE_ID, "db", 2),  # another version
        crypto.secret_ad(b"t" * 16, "db", 1),  # another store
        crypto.data_key_ad(STORE_ID, "keyfile"),  # another purpose
    ],
)
def test_a_ciphertext_only_opens_in_its_own_context(other_ad):
    sealed = crypto.seal(KEY, b"value", crypto.secret_ad(STORE_ID, "db", 1))
    with pytest.raises(crypto.AuthenticationFailed):
        crypto.unseal(KEY, sealed, other_ad)


def test_wrong_key_and_short_blobs_fail_authentication():
    sealed = crypto.seal(KEY, b"value", b"ad")
    with pytest.raises(crypto.AuthenticationFailed):
        crypto.unseal(bytes(32), sealed, b"ad")
    with pytest.raises(crypto.AuthenticationFailed):
        crypto.unseal(KEY, sealed[: crypto.NONCE_BYTES + crypto.TAG_BYTES - 1], b"ad")


def test_associated_data_is_unambiguous():
    """Version and name cannot trade bytes: the version has a fixed width and the name comes last."""
    ads = {
        crypto.secret_ad(STORE_ID, "a1", 1),
        crypto.secret_ad(STORE_ID, "a", 11),
        crypto.secret_ad(STORE_ID, "1", 1),
        crypto.data_key_ad(STORE_ID, "keyfile"),
        crypto.data_key_ad(STORE_ID, "passphrase"),
    }
    assert len(ads) == 5


def test_scrypt_parameters_round_trip_and_bind_the_salt():
    params = crypto.ScryptParams(salt=b"\x01" * 16, n=2**10)
    assert crypto.ScryptParams.from_json(params.to_json()) == params
    key = params.derive(b"correct horse")
    assert len(key) == crypto.KEY_BYTES
    assert params.derive(b"correct horse") == key
    assert crypto.ScryptParams(salt=b"\x02" * 16, n=2**10).derive(b"correct horse") != key
    assert params.derive(b"correct horsf") != key


def test_fresh_parameters_use_the_documented_cost_and_a_random_salt():
    a, b = crypto.ScryptParams.fresh(), crypto.ScryptParams.fresh()
    assert (a.n, a.r, a.p, len(a.salt)) == (2**17, 8, 1, 16)
    assert a.salt != b.salt
