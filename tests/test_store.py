"""The store on disk: values round-trip, tampering and wrong keys are caught, files stay private, keys rotate."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import time
from contextlib import closing
from pathlib import Path

import pytest

from launcher import crypto, redact
from launcher.errors import Conflict, NotFound, StoreError, UsageError
from launcher.store import MAX_VALUE_BYTES, Store

PASSPHRASE = "correct horse battery staple"


@pytest.fixture
def store(launch_home: Path) -> Store:
    return Store.open()


def raw(home: Path) -> closing[sqlite3.Connection]:
    """The store's database, opened behind the store's back (as an attacker with file access would)."""
    return closing(sqlite3.connect(home / "store.db", isolation_level=None))


def value_of(name: str, home: Path | None = None) -> bytes:
    """Read a value through a fresh Store, so nothing is cached from the one that wrote it."""
    return Store.open(home).reveal([name])[name].value


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# -- values ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [b"x", "pässwörd ✓".encode(), bytes(range(256)), b"line\r\n\x00end\n", os.urandom(MAX_VALUE_BYTES)],
    ids=["one-byte", "utf8", "all-bytes", "newlines-and-nul", "one-mib"],
)
def test_values_round_trip_byte_for_byte(store, value):
    info = store.add("s", value)
    assert (info.version, info.size) == (1, len(value))
    revealed = Store.open().reveal(["s"])["s"]
    assert revealed.value == value and revealed.version == 1
    assert "value" not in repr(revealed) and repr(value)[:20] not in repr(revealed)


@pytest.mark.parametrize("value", [b"", b"x" * (MAX_VALUE_BYTES + 1)], ids=["empty", "over-1-mib"])
def test_values_outside_the_limits_are_refused(store, value, launch_home):
    with pytest.raises(UsageError, match="'s'"):
        store.add("s", value)
    assert store.list() == []


@pytest.mark.parametrize("name", ["a", "A-b_c.d", "0", "x" * 253, "-dash", "_"])
def test_valid_names(store, name):
    store.add(name, b"v")
    assert [s.name for s in store.list()] == [name]


@pytest.mark.parametrize("name", ["", ".hidden", "x" * 254, "a b", "a/b", "é", "a$", "new\nline"])
def test_invalid_names_are_usage_errors(store, name):
    with pytest.raises(UsageError, match="invalid secret name"):
        store.add(name, b"v")
    with pytest.raises(UsageError):
        store.reveal([name])


def test_add_never_overwrites(store):
    store.add("s", b"first")
    with pytest.raises(Conflict, match="launch secret edit s"):
        store.add("s", b"second")
    assert value_of("s") == b"first"


def test_edit_bumps_the_version_only_when_the_value_changes(store):
    store.add("s", b"v1", description="old")
    info = store.edit("s", description="new")
    assert (info.version, info.description) == (1, "new")
    info = store.edit("s", b"v2")
    assert (info.version, info.size, info.description) == (2, 2, "new")
    assert Store.open().reveal(["s"])["s"].version == 2
    assert value_of("s") == b"v2"
    assert store.info("s") == info


def test_updated_is_when_the_value_last_changed(store):
    """RunPod's valueLastUpdatedAt: a new description alone leaves it; a new value moves it."""
    added = store.add("s", b"v1", description="old")
    time.sleep(0.01)
    assert store.edit("s", description="new").updated == added.updated == store.info("s").updated
    time.sleep(0.01)
    assert store.edit("s", b"v2").updated > added.updated


def test_edit_errors(store):
    with pytest.raises(NotFound, match="'s'"):
        store.edit("s", b"v")
    with pytest.raises(NotFound):
        store.edit("s", description="d")
    store.add("s", b"v")
    with pytest.raises(UsageError, match="nothing to change"):
        store.edit("s")


def test_list_is_sorted_metadata_and_needs_no_key(store, launch_home):
    for name in ["b", "a", "c"]:
        store.add(name, name.encode() * 3, description=f"about {name}")
    (launch_home / "key").unlink()  # listing never decrypts, so the key is not needed
    listed = Store.open().list()
    assert [(s.name, s.description, s.version, s.size) for s in listed] == [
        ("a", "about a", 1, 3),
        ("b", "about b", 1, 3),
        ("c", "about c", 1, 3),
    ]
    assert all(s.created <= s.updated for s in listed)
    with pytest.raises(StoreError, match=r"key file .* is missing"):
        value_of("a")


def test_opening_and_reading_an_absent_store_creates_nothing(launch_home):
    store = Store.open()
    assert store.list() == []
    assert store.last_use("x") is None
    with pytest.raises(NotFound):
        store.info("x")
    with pytest.raises(NotFound):
        store.reveal(["x"])
    with pytest.raises(NotFound):
        store.remove(["x"])
    assert not launch_home.exists()


def test_reveal_names_every_missing_secret_and_registers_values_for_redaction(store):
    store.add("a", b"alpha-secret-value")
    with pytest.raises(NotFound) as caught:
        store.reveal(["a", "missing1", "missing2"])
    assert "'missing1'" in str(caught.value) and "'missing2'" in str(caught.value)
    assert "alpha" not in str(caught.value)
    assert Store.open().reveal(["a", "a"])["a"].value == b"alpha-secret-value"
    assert redact.scrub("token=alpha-secret-value") == "token=***"


def test_remove_is_all_or_nothing(store):
    store.add("a", b"1")
    store.add("b", b"2")
    with pytest.raises(NotFound) as caught:
        store.remove(["a", "gone1", "gone2"])
    assert "'gone1', 'gone2'" in str(caught.value)
    assert [s.name for s in store.list()] == ["a", "b"]
    store.remove(["a", "b"])
    assert store.list() == []


def test_import_adds_what_it_can_in_one_go_and_says_why_it_skipped_the_rest(store):
    store.add("exists", b"old")
    result = store.import_entries(
        [("new1", b"1"), ("exists", b"2"), ("bad name", b"3"), ("empty", b""), ("new1", b"4"), ("new2", b"5")],
        description="from .env",
    )
    assert result.added == ("new1", "new2")
    assert [(name, reason.split()[0]) for name, reason in result.skipped] == [
        ("exists", "exists"),
        ("bad name", "invalid"),
        ("empty", "empty"),
        ("new1", "repeated:"),
    ]
    assert value_of("new1") == b"1" and value_of("exists") == b"old"
    assert store.info("new2").description == "from .env"
    assert store.import_entries([]).added == ()


# -- tampering and wrong keys ----------------------------------------------------------------------------------


def test_every_byte_of_a_sealed_value_is_authenticated(store, launch_home):
    store.add("s", b"v")
    with raw(launch_home) as db:
        (sealed,) = db.execute("SELECT sealed FROM secrets").fetchone()
        assert len(sealed) == 12 + 1 + 16  # nonce, ciphertext, tag: every one of them is flipped below
        for i in range(len(sealed)):
            tampered = sealed[:i] + bytes([sealed[i] ^ 0x01]) + sealed[i + 1 :]
            db.execute("UPDATE secrets SET sealed = ?", (tampered,))
            with pytest.raises(StoreError, match="secret 's' failed authentication"):
                value_of("s")
        db.execute("UPDATE secrets SET sealed = ?", (sealed[:-1],))
        with pytest.raises(StoreError, match="failed authentication"):
            value_of("s")
        db.execute("UPDATE secrets SET sealed = ?", (sealed,))
    assert value_of("s") == b"v"


def test_ciphertexts_swapped_between_names_do_not_decrypt(store, launch_home):
    store.add("a", b"value-a")
    store.add("b", b"value-b")
    with raw(launch_home) as db:
        sealed = dict(db.execute("SELECT name, sealed FROM secrets"))
        db.execute("UPDATE secrets SET sealed = ? WHERE name = 'a'", (sealed["b"],))
        db.execute("UPDATE secrets SET sealed = ? WHERE name = 'b'", (sealed["a"],))
    for name in ("a", "b"):
        with pytest.raises(StoreError, match=f"secret '{name}' failed authentication"):
            value_of(name)


def test_a_record_copied_into_another_store_does_not_decrypt(store, launch_home, tmp_path):
    store.add("s", b"original")
    other_home = tmp_path / "other"
    Store.open(other_home).add("s", b"other")
    with raw(launch_home) as db:
        row = db.execute("SELECT version, size, sealed FROM secrets").fetchone()
    with raw(other_home) as db:
        db.execute("UPDATE secrets SET version = ?, size = ?, sealed = ?", row)
    with pytest.raises(StoreError, match="failed authentication"):
        value_of("s", other_home)


@pytest.mark.parametrize("column", ["version", "size"])
def test_changing_the_version_or_size_column_is_caught(store, launch_home, column):
    store.add("s", b"v1")
    store.edit("s", b"v2")
    with raw(launch_home) as db:
        db.execute(f"UPDATE secrets SET {column} = 1")
    with pytest.raises(StoreError, match="secret 's' failed authentication"):
        value_of("s")


def test_changing_the_store_id_is_caught(store, launch_home):
    store.add("s", b"v")
    with raw(launch_home) as db:
        db.execute("UPDATE store SET store_id = ?", (os.urandom(16),))
    with pytest.raises(StoreError, match="does not open this store"):
        value_of("s")


def test_a_wrong_or_damaged_key_file_is_refused(store, launch_home):
    store.add("s", b"v")
    key = launch_home / "key"
    key.write_bytes(os.urandom(32))
    with pytest.raises(StoreError, match=f"the key file {key} does not open this store"):
        value_of("s")
    key.write_bytes(os.urandom(31))
    with pytest.raises(StoreError, match="damaged"):
        value_of("s")


def test_a_store_made_by_a_newer_launch_is_refused(store, launch_home):
    store.add("s", b"v")
    with raw(launch_home) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(StoreError, match="newer version"):
        Store.open().list()


def test_a_file_that_is_not_a_database_is_a_store_error(launch_home):
    launch_home.mkdir(mode=0o700)
    (launch_home / "store.db").write_bytes(b"not a database" * 100)
    (launch_home / "store.db").chmod(0o600)
    with pytest.raises(StoreError, match=r"store\.db"):
        Store.open().list()


# -- passphrases and key rotation ------------------------------------------------------------------------------


@pytest.fixture
def cheap_scrypt(monkeypatch) -> None:
    """Derive passphrase keys at n=2**14 instead of 2**17: the stored parameters are used to read, so this only
    makes the test faster (the default cost is used by test_rotating_between_key_file_and_passphrase...)."""
    monkeypatch.setattr(crypto.ScryptParams, "fresh", classmethod(lambda cls: cls(salt=os.urandom(16), n=2**14)))


def to_passphrase(monkeypatch, passphrase: str = PASSPHRASE) -> None:
    monkeypatch.setenv("LAUNCH_NEW_PASSPHRASE", passphrase)
    Store.open().rotate_key("passphrase")
    monkeypatch.delenv("LAUNCH_NEW_PASSPHRASE")


def test_rotating_between_key_file_and_passphrase_keeps_every_secret(store, launch_home, monkeypatch):
    values = {f"s{i}": os.urandom(100) for i in range(5)}
    for name, value in values.items():
        store.add(name, value)
    old_key = (launch_home / "key").read_bytes()

    Store.open().rotate_key()
    new_key = (launch_home / "key").read_bytes()
    assert new_key != old_key and mode(launch_home / "key") == 0o600
    assert {n: value_of(n) for n in values} == values

    to_passphrase(monkeypatch)
    assert not (launch_home / "key").exists()
    with pytest.raises(StoreError, match="LAUNCH_PASSPHRASE"):
        value_of("s0")
    monkeypatch.setenv("LAUNCH_PASSPHRASE", "wrong")
    with pytest.raises(StoreError, match="wrong passphrase"):
        value_of("s0")
    monkeypatch.setenv("LAUNCH_PASSPHRASE", PASSPHRASE)
    passphrase_store = Store.open()
    assert {n: r.value for n, r in passphrase_store.reveal(values).items()} == values
    passphrase_store.add("added-later", b"later")  # the data key is unwrapped once per Store

    passphrase_store.rotate_key("keyfile")
    monkeypatch.delenv("LAUNCH_PASSPHRASE")
    assert (launch_home / "key").read_bytes() not in (old_key, new_key)
    assert {n: value_of(n) for n in values} == values
    assert value_of("added-later") == b"later"
    assert sorted(os.listdir(launch_home)) == ["key", "lock", "store.db"]


def test_a_new_passphrase_replaces_the_old_one(store, monkeypatch, cheap_scrypt):
    store.add("s", b"v")
    to_passphrase(monkeypatch, "first")
    monkeypatch.setenv("LAUNCH_PASSPHRASE", "first")
    monkeypatch.setenv("LAUNCH_NEW_PASSPHRASE", "second")
    Store.open().rotate_key()
    with pytest.raises(StoreError, match="wrong passphrase"):
        value_of("s")
    monkeypatch.setenv("LAUNCH_PASSPHRASE", "second")
    assert value_of("s") == b"v"


def test_rotation_without_a_new_passphrase_changes_nothing(store, launch_home, monkeypatch):
    monkeypatch.delenv("LAUNCH_NEW_PASSPHRASE", raising=False)
    store.add("s", b"v")
    key = (launch_home / "key").read_bytes()
    with pytest.raises(StoreError, match="LAUNCH_NEW_PASSPHRASE"):
        Store.open().rotate_key("passphrase")
    with pytest.raises(UsageError, match="unknown key kind"):
        Store.open().rotate_key("keyring")
    assert (launch_home / "key").read_bytes() == key
    assert value_of("s") == b"v"


def test_rotating_an_empty_store_to_a_passphrase_starts_it_that_way(launch_home, monkeypatch, cheap_scrypt):
    to_passphrase(monkeypatch)
    monkeypatch.setenv("LAUNCH_PASSPHRASE", PASSPHRASE)
    Store.open().add("s", b"v")
    assert value_of("s") == b"v" and not (launch_home / "key").exists()


# -- interrupted rotations: the files a crash between two steps leaves behind ----------------------------------


def test_a_crash_after_the_commit_and_before_the_rename_is_finished_by_the_next_process(store, launch_home):
    """rotate_key writes key.new, commits the re-wrapped data key, then renames key.new to key."""
    store.add("s", b"v")
    old_key = (launch_home / "key").read_bytes()
    Store.open().rotate_key()
    new_key = (launch_home / "key").read_bytes()
    (launch_home / "key").rename(launch_home / "key.new")
    (launch_home / "key").write_bytes(old_key)
    (launch_home / "key").chmod(0o600)  # the state right after the commit

    assert value_of("s") == b"v"
    assert (launch_home / "key").read_bytes() == new_key
    assert not (launch_home / "key.new").exists()


def test_a_crash_before_the_commit_leaves_the_old_key_working(store, launch_home):
    store.add("s", b"v")
    key = (launch_home / "key").read_bytes()
    for leftover in ("key.new", ".key-0123abcd.tmp"):
        (launch_home / leftover).write_bytes(os.urandom(32))
        (launch_home / leftover).chmod(0o600)
    assert value_of("s") == b"v"
    assert (launch_home / "key").read_bytes() == key
    assert sorted(os.listdir(launch_home)) == ["key", "lock", "store.db"]


def test_a_crash_after_switching_to_a_passphrase_drops_the_old_key_file(store, launch_home, monkeypatch, cheap_scrypt):
    store.add("s", b"v")
    key = (launch_home / "key").read_bytes()
    to_passphrase(monkeypatch)
    (launch_home / "key").write_bytes(key)  # the state right after the commit
    (launch_home / "key").chmod(0o600)
    monkeypatch.setenv("LAUNCH_PASSPHRASE", PASSPHRASE)
    assert value_of("s") == b"v"
    assert not (launch_home / "key").exists()


# -- permissions -----------------------------------------------------------------------------------------------


def test_the_folder_is_0700_and_every_file_0600_whatever_the_umask(launch_home):
    old_umask = os.umask(0)
    try:
        store = Store.open()
        store.add("s", b"v")
        store.record_use("job1", "busybox", {"s": 1})
        with raw(launch_home) as db:  # keeps -wal and -shm in place while the store writes
            db.execute("SELECT count(*) FROM secrets").fetchall()
            store.edit("s", b"v2")
            files = sorted(os.listdir(launch_home))
            assert files == ["key", "lock", "store.db", "store.db-shm", "store.db-wal", "usage.log"]
            assert {f: mode(launch_home / f) for f in files} == dict.fromkeys(files, 0o600)
    finally:
        os.umask(old_umask)
    assert mode(launch_home) == 0o700


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o604, 0o620])
@pytest.mark.parametrize("file", ["key", "store.db", "usage.log"])
def test_a_file_others_can_read_is_refused_with_the_fix(store, launch_home, file, loose):
    store.add("s", b"v")
    store.record_use("job1", "busybox", {"s": 1})
    path = launch_home / file
    path.chmod(loose)
    with pytest.raises(StoreError) as caught:
        Store.open().info("s")  # reads the database and the usage record
        value_of("s")  # reads the key
    assert str(path) in str(caught.value) and f"{loose:04o}" in str(caught.value)
    assert f"chmod 600 {path}" in str(caught.value)


@pytest.mark.parametrize("loose", [0o755, 0o750, 0o701])
def test_a_folder_others_can_enter_is_refused_with_the_fix(store, launch_home, loose):
    store.add("s", b"v")
    launch_home.chmod(loose)
    with pytest.raises(StoreError, match=f"{loose:04o} .*`chmod 700 {launch_home}`"):
        Store.open().list()
    launch_home.chmod(0o700)
    assert [s.name for s in Store.open().list()] == ["s"]


def test_a_symlinked_key_file_is_refused(store, launch_home, tmp_path):
    store.add("s", b"v")
    elsewhere = tmp_path / "key-elsewhere"
    (launch_home / "key").rename(elsewhere)
    (launch_home / "key").symlink_to(elsewhere)
    with pytest.raises(StoreError, match=f"refusing to use {launch_home / 'key'}: it is a symbolic link"):
        value_of("s")


def test_no_plaintext_reaches_any_file(store, launch_home):
    text, binary = b"plaintext-marker-0123456789", bytes(range(200, 256)) * 4
    store.add("t", text)
    with raw(launch_home) as db:  # an open reader keeps the WAL file on disk
        db.execute("SELECT count(*) FROM secrets").fetchall()
        store.add("b", binary, description="binary")
        store.edit("t", text + b"-v2")
        store.import_entries([("i", text + b"-imported")])
        Store.open().reveal(["t", "b", "i"])
        store.record_use("job1", "busybox", {"t": 2, "b": 1})
        Store.open().rotate_key()
        store.remove(["i"])
        contents = {p.name: p.read_bytes() for p in launch_home.iterdir()}
    assert {"store.db", "store.db-wal", "store.db-shm", "key", "usage.log"} <= set(contents)
    for name, data in contents.items():
        assert text not in data, name
        assert binary not in data, name


# -- usage record ----------------------------------------------------------------------------------------------


def test_usage_records_name_versions_never_values(store, launch_home):
    store.add("a", b"value-of-a")
    store.add("b", b"value-of-b")
    assert store.last_use("a") is None and store.info("a").last_used is None
    store.record_use("job1", "img:1", {"a": 1, "b": 1})
    store.record_use("job2", "img:2", {"b": 1}, backend="swarm")
    with open(launch_home / "usage.log", "ab") as log:
        log.write(b'{"torn": ')  # a record cut short by a crash is skipped
    last_a, last_b = store.last_use("a"), store.last_use("b")
    assert (last_a.job, last_a.image, last_a.backend, dict(last_a.secrets)) == (
        "job1",
        "img:1",
        "docker",
        {"a": 1, "b": 1},
    )
    assert (last_b.job, last_b.backend) == ("job2", "swarm")
    assert store.info("b").last_used == last_b
    assert store.last_use("c") is None
    log = (launch_home / "usage.log").read_bytes()
    assert b"value-of" not in log
    assert [json.loads(line)["job"] for line in log.splitlines()[:2]] == ["job1", "job2"]
