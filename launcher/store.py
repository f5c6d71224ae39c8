"""The encrypted secret store: the only place secret values rest.

Layout of the store folder (`launcher.paths.home()`, mode 0700, every file 0600, all owned by the user):

    store.db        SQLite database: one row of key material, one row per secret (+ -wal/-shm while in use)
    key             the key-encryption key, 32 random bytes (key-file mode only)
    lock            flock(2) target that serialises changes to the key files
    usage.log       append-only JSON lines: which job used which secret versions, when (never values)

Why SQLite: its transactions give for free what a hand-rolled file format would have to get right itself. In WAL
mode with `synchronous=FULL` a committed write survives a crash, and an uncommitted one is
invisible: a SIGKILL at any moment leaves every secret at its old or its new value, and the next connection
recovers the journal (there are no temp files of ours to sweep). Writers take the write lock up front
(`BEGIN IMMEDIATE`) and wait for each other (`busy_timeout`), so concurrent `launch` processes never lose a write
and never deadlock; readers are never blocked. `sqlite3` is in the standard library and cheap to import.

Metadata (name, description, times, version, size) lives in plain columns, so `list()` and `info()` run one
query and never decrypt, derive a key or import `cryptography`. Descriptions and times are therefore not
authenticated (someone who can write the file can change them); the version is, and the size is checked against
the decrypted value.

Encryption (see `launcher.crypto`): each value is sealed with AES-256-GCM under the store's random data key, with
a fresh nonce per write and associated data naming the store, the secret and its version. The data key is
stored wrapped by a key-encryption key (KEK) taken from the `key` file (no KDF: it is already random) or derived
from a passphrase with scrypt. Rotating the KEK re-wraps the data key in one transaction; it does not re-encrypt
the values (whoever holds an old KEK *and* an old copy of store.db can still read them: start a new store then).

Key files change only under an exclusive lock on `lock` and always by publishing a complete, fsynced file
(write a temp file, then link or rename it into place). A rotation writes the new key to `key.new`, commits the
re-wrapped data key, then renames `key.new` to `key`. A crash between those steps is repaired by the next process
that loads the key: whichever of `key` and `key.new` opens the data key becomes `key`; the other goes.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import sqlite3
import stat
import sys
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from launcher import names, paths, redact
from launcher.errors import Conflict, NotFound, StoreError, UsageError

MAX_VALUE_BYTES = 1024 * 1024
KEYFILE = "keyfile"
PASSPHRASE = "passphrase"
PASSPHRASE_ENV = "LAUNCH_PASSPHRASE"
NEW_PASSPHRASE_ENV = "LAUNCH_NEW_PASSPHRASE"  # the passphrase `rotate_key` switches to

_DB_FILE = "store.db"
_KEY_FILE = "key"
_PENDING_KEY_FILE = "key.new"
_LOCK_FILE = "lock"
_USAGE_FILE = "usage.log"
_TEMP_KEY = re.compile(r"\.key-[0-9a-f]+\.tmp")
_TEMP_DB = re.compile(r"\.store-[0-9a-f]+\.tmp(-wal|-shm|-journal)?")  # a store being made (see Store._create)
_SCHEMA_VERSION = 1
_METADATA = "name, description, created, updated, version, size"  # SecretInfo's fields, in order
_BUSY_TIMEOUT_S = 30.0
_SCHEMA = (
    """CREATE TABLE store (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    store_id BLOB NOT NULL,       -- 16 random bytes, bound into every ciphertext
    key_kind TEXT NOT NULL,       -- 'keyfile' or 'passphrase': what wraps the data key
    kdf TEXT,                     -- scrypt parameters (JSON) in passphrase mode
    data_key BLOB NOT NULL        -- the data key, sealed under the key-encryption key
    )""",
    """CREATE TABLE secrets (
    name TEXT PRIMARY KEY,
    description TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    version INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sealed BLOB NOT NULL          -- last, so metadata queries never read the value's pages
    )""",
)
# Versions replaced by `edit`, kept sealed (same key, same associated data) while a job that holds one exists, so
# that `launch logs` can still mask them; pruned by `prune_versions`. Made by the first edit: a store of an older
# launch, which never reads this table, stays usable by it.
_OLD_VERSIONS = """CREATE TABLE IF NOT EXISTS old_versions (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    size INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (name, version)
    )"""


class UsageRecord(NamedTuple):
    """One line of usage.log: a job started at `time` with these secret names and versions."""

    time: float
    job: str
    image: str
    backend: str
    secrets: Mapping[str, int]


@dataclass(frozen=True)
class SecretInfo:
    """What the store tells about a secret without decrypting it. `last_used` is filled by `Store.info`."""

    name: str
    description: str
    created: float
    updated: float
    version: int
    size: int
    last_used: UsageRecord | None = None


@dataclass(frozen=True)
class Revealed:
    """A decrypted value (never in its repr) and the version it came from."""

    value: bytes = field(repr=False)
    version: int


class ImportResult(NamedTuple):
    """What `Store.import_entries` did: the names it added, and each entry it skipped with the reason."""

    added: tuple[str, ...]
    skipped: tuple[tuple[str, str], ...]  # (name, reason)


class _Keys(NamedTuple):
    """The unwrapped data key, the store it belongs to (its id is in every ciphertext's context), the KEK kind."""

    store_id: bytes
    data_key: bytes
    kind: str

    def __repr__(self) -> str:
        return f"_Keys(kind={self.kind!r})"  # never the key


class _Header(NamedTuple):
    """The store's key record: its id and the data key, wrapped by a key file's key or a passphrase's."""

    store_id: bytes
    key_kind: str
    kdf: str | None
    data_key: bytes


def name_problem(name: str) -> str | None:
    """Why `name` cannot be a secret name, or None (launcher.names, the one rule)."""
    return names.secret_name_problem(name)


def value_problem(value: bytes) -> str | None:
    """Why `value` cannot be stored, or None."""
    if not value:
        return "empty value"
    if len(value) > MAX_VALUE_BYTES:
        return f"value of {len(value)} bytes is over the limit of 1 MiB ({MAX_VALUE_BYTES} bytes)"
    return None


def validate_name(name: str) -> None:
    """UsageError unless `name` can be a secret's name."""
    problem = name_problem(name)
    if problem:
        raise UsageError(problem)


def _validate_value(name: str, value: bytes) -> None:
    problem = value_problem(value)
    if problem:
        raise UsageError(f"secret {_shown(name)}: {problem}")


_shown = names.shown


def _missing(names: Sequence[str]) -> NotFound:
    listed = ", ".join(_shown(n) for n in names)
    noun = "secret" if len(names) == 1 else "secrets"
    return NotFound(f"{noun} {listed} not found (see `launch secret ls`)")


def already_exists(name: str) -> Conflict:
    return Conflict(f"secret {_shown(name)} already exists; change it with `launch secret edit {name}`")


def _auth_failed(name: str) -> StoreError:
    return StoreError(f"secret {_shown(name)} failed authentication: the store was modified or the key is wrong")


class Store:
    """A user's secret store. Opening is free; the folder and its files appear on the first write."""

    def __init__(self, home: Path):
        self.home = home.absolute()
        self._db_path = self.home / _DB_FILE
        self._keys: _Keys | None = None

    @classmethod
    def open(cls, home: Path | None = None) -> Store:
        return cls(Path(home) if home is not None else paths.home())

    # -- metadata: one query, no decryption ------------------------------------------------------------------

    def list(self) -> list[SecretInfo]:
        """Every secret's metadata, sorted by name."""
        with self._reading() as db:
            if db is None:
                return []
            rows = db.execute(f"SELECT {_METADATA} FROM secrets ORDER BY name").fetchall()
        return [SecretInfo(*row) for row in rows]

    def info(self, name: str) -> SecretInfo:
        """One secret's metadata and where it was last used; NotFound if there is no such secret."""
        validate_name(name)
        with self._reading() as db:
            row = _metadata(db, name)
        return SecretInfo(*row, last_used=self.last_use(name))

    def exists(self, name: str) -> bool:
        """Whether there is a secret called `name` (checked before asking for a value, to fail early)."""
        validate_name(name)
        with self._reading() as db:
            return _exists(db, name)

    def require(self, names: Iterable[str]) -> None:
        """NotFound naming every one of `names` that is not in the store (checked before asking for input)."""
        names = _distinct_valid(names)
        with self._reading() as db:
            _check_present(db, names)

    def tag(self, create: bool = False) -> str | None:
        """This store's id as a job label (`launch.store`): a hash of its random id, which reveals nothing about
        the store, its user or its secrets. None when there is no store yet, unless `create` (then one is made,
        in key-file mode, as the first `secret add` would)."""
        header = self._read_header()
        if header is None and create:
            self._data_key()
            header = self._read_header()
        if header is None:
            return None
        import hashlib

        return hashlib.sha256(b"launch.store\0" + header.store_id).hexdigest()[:20]

    # -- changes: each one transaction ----------------------------------------------------------------------

    def add(self, name: str, value: bytes, description: str = "") -> SecretInfo:
        """Store a new secret at version 1; Conflict if the name is taken (nothing is overwritten)."""
        validate_name(name)
        _validate_value(name, value)
        keys = self._data_key()
        with self._writing(keys) as db:
            if _exists(db, name):
                raise already_exists(name)
            return _insert(db, keys, name, value, description, time.time())

    def edit(self, name: str, value: bytes | None = None, description: str | None = None) -> SecretInfo:
        """Change the value (which always makes a new version) and/or the description."""
        validate_name(name)
        if value is None and description is None:
            raise UsageError(f"secret {_shown(name)}: nothing to change: give a new value or a description")
        keys = None
        if value is not None:
            _validate_value(name, value)
            self.require([name])  # NotFound before a key is loaded or a passphrase asked for
            keys = self._data_key()
        with self._writing(keys) as db:
            _, old_description, created, updated, version, size = _metadata(db, name)
            now = time.time()
            if value is not None:
                db.execute(_OLD_VERSIONS)
                keep = "INSERT OR REPLACE INTO old_versions SELECT name, version, size, sealed FROM secrets"
                db.execute(keep + " WHERE name = ?", (name,))
                version, size = version + 1, len(value)
                db.execute(
                    "UPDATE secrets SET version = ?, size = ?, sealed = ?, updated = ? WHERE name = ?",
                    (version, size, _seal(keys, name, version, value), now, name),
                )
            else:
                now = updated  # `updated` is when the value last changed (RunPod's valueLastUpdatedAt)
            if description is not None:
                db.execute("UPDATE secrets SET description = ? WHERE name = ?", (description, name))
        return SecretInfo(name, old_description if description is None else description, created, now, version, size)

    def remove(self, names: Sequence[str]) -> None:
        """Delete all of `names` or, if any is missing, none of them (NotFound lists every missing name)."""
        names = _distinct_valid(names)
        with self._writing() as db:
            _check_present(db, names)
            db.executemany("DELETE FROM secrets WHERE name = ?", [(n,) for n in names])
            if _has_old_versions(db):
                db.executemany("DELETE FROM old_versions WHERE name = ?", [(n,) for n in names])

    def import_entries(self, entries: Sequence[tuple[str, bytes]], description: str = "") -> ImportResult:
        """Add every entry that can be added, in one transaction; skip the others, each with the reason."""
        if not entries:
            return ImportResult((), ())
        keys = self._data_key()
        added: list[str] = []
        skipped: list[tuple[str, str]] = []
        with self._writing(keys) as db:
            now = time.time()
            for name, value in entries:
                reason = _import_problem(db, name, value, added)
                if reason:
                    skipped.append((name, reason))
                else:
                    _insert(db, keys, name, value, description, now)
                    added.append(name)
        return ImportResult(tuple(added), tuple(skipped))

    # -- values ----------------------------------------------------------------------------------------------

    def reveal(self, names: Iterable[str]) -> dict[str, Revealed]:
        """Decrypt the named secrets. NotFound names every missing one; tampering or a wrong key: StoreError.

        Every value is handed to `launcher.redact` so that no message this process prints can contain it.
        """
        names = _distinct_valid(names)
        with self._reading() as db:
            rows = _sealed_rows(db, names)
        missing = [n for n in names if n not in rows]
        if missing:
            raise _missing(missing)
        if not names:
            return {}
        keys = self._data_key()
        revealed = {}
        for name in names:
            version, size, sealed = rows[name]
            value = _unseal(keys, name, version, sealed)
            if len(value) != size:
                raise _auth_failed(name)
            redact.remember(value)
            revealed[name] = Revealed(value, version)
        return revealed

    def reveal_versions(self, wanted: Mapping[str, int]) -> tuple[list[bytes], list[str]]:
        """The values of these secret versions (current or kept by `edit`), and, as 'name v3', those the store no
        longer has (removed, or pruned). Every value is handed to `launcher.redact`, as `reveal` does."""
        names = _distinct_valid(wanted)
        with self._reading() as db:
            current = _sealed_rows(db, names)
            old = {}
            if db is not None and _has_old_versions(db):
                query = "SELECT version, size, sealed FROM old_versions WHERE name = ? AND version = ?"
                for name in names:
                    row = db.execute(query, (name, wanted[name])).fetchone()
                    if row is not None:
                        old[name] = row
        found = {n: current[n] for n in names if n in current and current[n][0] == wanted[n]}
        found.update({n: row for n, row in old.items() if n not in found})
        missing = [f"{n} v{wanted[n]}" for n in names if n not in found]
        if not found:
            return [], missing
        keys = self._data_key()
        values = []
        for name, (version, size, sealed) in sorted(found.items()):
            value = _unseal(keys, name, version, sealed)
            if len(value) != size:
                raise _auth_failed(name)
            redact.remember(value)
            values.append(value)
        return values, missing

    def prune_versions(self, held: Iterable[tuple[str, int]]) -> int:
        """Delete the kept old versions that no (name, version) in `held` names; returns how many went."""
        keep = set(held)
        with self._writing() as db:
            if db is None or not _has_old_versions(db):
                return 0
            rows = db.execute("SELECT name, version FROM old_versions").fetchall()
            gone = [(n, v) for n, v in rows if (n, v) not in keep]
            db.executemany("DELETE FROM old_versions WHERE name = ? AND version = ?", gone)
        return len(gone)

    # -- usage record ----------------------------------------------------------------------------------------

    def record_use(self, job: str, image: str, uses: Mapping[str, int], backend: str = "docker") -> None:
        """Append one line to usage.log: when, which job and image, which secret versions. Never values.

        One write(2) on an O_APPEND descriptor per record, so records of concurrent jobs never interleave.
        """
        record = {"time": time.time(), "job": job, "image": image, "backend": backend, "secrets": dict(uses)}
        line = (json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n").encode()
        path = self.home / _USAGE_FILE
        self._make_home()
        fd = _open_private(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            written = os.write(fd, line)
        except OSError as exc:
            raise StoreError(f"cannot write the usage record {path}: {exc.strerror}") from None
        finally:
            os.close(fd)
        if written != len(line):
            raise StoreError(f"cannot write the usage record {path}: short write (disk full?)")

    def last_use(self, name: str) -> UsageRecord | None:
        """The newest usage record naming `name`, or None."""
        if not self._home_exists():
            return None
        try:
            fd = _open_private(self.home / _USAGE_FILE, os.O_RDONLY)
        except FileNotFoundError:
            return None
        with os.fdopen(fd, "rb") as log:
            lines = log.read().splitlines()
        for line in reversed(lines):
            record = _parse_usage(line)
            if record is not None and name in record.secrets:
                return record
        return None

    # -- key management --------------------------------------------------------------------------------------

    def rotate_key(self, to: str | None = None) -> None:
        """Re-wrap the data key under a new key-encryption key: a new key file, or a new passphrase.

        `to` is None (a new key of the current kind), "keyfile" or "passphrase". Values are not re-encrypted.
        """
        if to not in (None, KEYFILE, PASSPHRASE):
            raise UsageError(f"unknown key kind {to!r}: use '{KEYFILE}' or '{PASSPHRASE}'")
        keys = self._data_key()  # makes the store if needed, and proves the current key opens it
        kind = to or keys.kind
        new_passphrase = _new_passphrase() if kind == PASSPHRASE else b""  # asked before taking the lock
        from launcher import crypto

        with self._key_lock(exclusive=True):
            self._repair(self._current_header())
            if kind == KEYFILE:
                kek, kdf = self._publish_key_file(self.home / _PENDING_KEY_FILE, crypto.new_key()), None
            else:
                params = crypto.ScryptParams.fresh()
                kek, kdf = params.derive(new_passphrase), params.to_json()
            wrapped = crypto.seal(kek, keys.data_key, crypto.data_key_ad(keys.store_id, kind))
            with self._writing(keys) as db:
                db.execute("UPDATE store SET key_kind = ?, kdf = ?, data_key = ? WHERE id = 1", (kind, kdf, wrapped))
            self._repair(self._current_header())  # moves key.new into place, or drops the old key file
        self._keys = _Keys(keys.store_id, keys.data_key, kind)

    def _data_key(self) -> _Keys:
        """The unwrapped data key, loaded once per Store. Makes the store (with a new key file) if there is none."""
        if self._keys is None:
            self._keys = self._load_data_key()
        return self._keys

    def _load_data_key(self) -> _Keys:
        with self._key_lock() as lock:
            header = self._read_header()
            if header is None or self._needs_repair(header):
                lock.exclusive()
                header = self._read_header() or self._create()
                self._repair(header)
            return self._unwrap(header)

    def _unwrap(self, header: _Header) -> _Keys:
        """Unwrap the data key with the key file or the passphrase; StoreError if it does not authenticate."""
        from launcher import crypto

        key_path = self.home / _KEY_FILE
        if header.key_kind == KEYFILE:
            kek = self._read_key_file(key_path)
            if kek is None:
                raise StoreError(
                    f"the key file {key_path} is missing: the secrets in {self._db_path} cannot be decrypted "
                    "without it (restore it from a backup)"
                )
            failure = f"the key file {key_path} does not open this store: wrong key file, or the store was modified"
        elif header.key_kind == PASSPHRASE and header.kdf is not None:
            kek = crypto.ScryptParams.from_json(header.kdf).derive(_passphrase())
            failure = "the passphrase does not open this store: wrong passphrase, or the store was modified"
        else:
            raise StoreError(f"the store {self._db_path} is damaged: unknown key kind")
        try:
            data_key = crypto.unseal(kek, header.data_key, crypto.data_key_ad(header.store_id, header.key_kind))
        except crypto.AuthenticationFailed:
            raise StoreError(failure) from None
        return _Keys(header.store_id, data_key, header.key_kind)

    def _create(self) -> _Header:
        """Make a new store (exclusive key lock held, no store.db): the database under a temp name, then the key
        file, then the database linked into place, so that a store.db is always a whole store.

        A key file without a store.db proves a store existed (or that a creation was cut short after the key was
        published: then its temp database is there and is finished here). Anything else is refused: a new store
        beside an old key file would leave the old secrets' only key next to a store it does not open.
        """
        from launcher import crypto

        key_path = self.home / _KEY_FILE
        header = self._finish_creation(key_path)
        if header is not None:
            return header
        self._check_no_orphan_key()
        kek = crypto.new_key()
        store_id = os.urandom(16)
        header = _Header(
            store_id, KEYFILE, None, crypto.seal(kek, crypto.new_key(), crypto.data_key_ad(store_id, KEYFILE))
        )
        temp = self.home / f".store-{os.urandom(8).hex()}.tmp"
        os.close(_open_private(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL))  # 0600 before SQLite's -wal/-shm copy it
        with self._connection(temp) as db:
            db.execute("PRAGMA journal_mode=WAL")  # persistent; must be set outside a transaction
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            db.execute(
                "INSERT INTO store VALUES (1, ?, ?, ?, ?)",
                (header.store_id, header.key_kind, header.kdf, header.data_key),
            )
            db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            db.execute("COMMIT")
        self._publish_key_file(key_path, kek)
        self._place(temp)
        return header

    def _check_no_orphan_key(self) -> None:
        """StoreError if a key file is there without a store.db nor a store being made beside it."""
        key_path = self.home / _KEY_FILE
        if _stat_private(key_path) is None or any(_TEMP_DB.fullmatch(n) for n in os.listdir(self.home)):
            return
        raise StoreError(
            f"the key file {key_path} exists but the store {self._db_path} does not: restore {_DB_FILE} from a "
            f"backup, or move {key_path} away to start a new, empty store"
        )

    def _finish_creation(self, key_path: Path) -> _Header | None:
        """Finish a creation cut short between publishing the key file and placing the database (its temp
        database opens with the key file); remove any other temp database. The header placed, or None."""
        placed = None
        for name in sorted(os.listdir(self.home)):
            if not _TEMP_DB.fullmatch(name):
                continue
            temp = self.home / name
            if placed is None and not name.endswith(("-wal", "-shm")):
                header = self._header_of(temp)
                if header is not None and self._opens(header, key_path):
                    self._place(temp)
                    placed = header
                    continue
            temp.unlink(missing_ok=True)
        return placed

    def _header_of(self, path: Path) -> _Header | None:
        """The key record of the (temp) database at `path`; None if it has none or cannot be read."""
        try:
            with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, isolation_level=None)) as db:
                row = db.execute("SELECT store_id, key_kind, kdf, data_key FROM store WHERE id = 1").fetchone()
        except sqlite3.Error:
            return None
        return _Header(*row) if row is not None else None

    def _place(self, temp: Path) -> None:
        """Link a whole temp database into place as store.db (never over one) and drop the temp name."""
        try:
            os.link(temp, self._db_path)
        except FileExistsError:  # pragma: no cover - the exclusive key lock is held: nobody else creates
            raise StoreError(f"the store {self._db_path} appeared while it was made; run the command again") from None
        except OSError as exc:
            raise StoreError(f"cannot create the store {self._db_path}: {exc.strerror}") from None
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(self.home)

    def _needs_repair(self, header: _Header) -> bool:
        """Whether an interrupted key change left files behind (cheap: one directory listing)."""
        names = set(os.listdir(self.home))
        return (
            _PENDING_KEY_FILE in names
            or (header.key_kind == PASSPHRASE and _KEY_FILE in names)
            or any(_TEMP_KEY.fullmatch(n) for n in names)
        )

    def _repair(self, header: _Header) -> None:
        """Finish or undo an interrupted key change. The exclusive key lock is held, so none is in progress.

        A pending key file that opens the data key was committed: it becomes the key file. Anything else left
        over (a pending key that was never committed, a key file in passphrase mode, temp files) is removed.
        """
        key_path, pending = self.home / _KEY_FILE, self.home / _PENDING_KEY_FILE
        try:
            for name in os.listdir(self.home):
                if _TEMP_KEY.fullmatch(name):
                    os.unlink(self.home / name)
            if header.key_kind == KEYFILE and self._opens(header, pending):
                os.replace(pending, key_path)
            else:
                pending.unlink(missing_ok=True)
            if header.key_kind == PASSPHRASE:
                key_path.unlink(missing_ok=True)
            _fsync_dir(self.home)
        except OSError as exc:
            raise StoreError(f"cannot tidy the key files in {self.home}: {exc.strerror}") from None

    def _opens(self, header: _Header, key_path: Path) -> bool:
        """Whether the key file at `key_path` exists and unwraps this store's data key."""
        from launcher import crypto

        kek = self._read_key_file(key_path)
        if kek is None:
            return False
        try:
            crypto.unseal(kek, header.data_key, crypto.data_key_ad(header.store_id, header.key_kind))
        except crypto.AuthenticationFailed:
            return False
        return True

    # -- files -----------------------------------------------------------------------------------------------

    def _home_exists(self) -> bool:
        """Whether the store folder exists; StoreError if it is not a private folder of this user."""
        st = _stat_private(self.home, follow_symlinks=True)
        if st is not None and not stat.S_ISDIR(st.st_mode):
            raise StoreError(f"refusing to use {self.home} as the store: it is not a folder")
        return st is not None

    def _make_home(self) -> None:
        """Create the store folder with mode 0700 whatever the umask, or check that the existing one is private."""
        try:
            self.home.parent.mkdir(parents=True, exist_ok=True)
            os.mkdir(self.home, 0o700)
            os.chmod(self.home, 0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot create the store folder {self.home}: {exc.strerror}") from None
        self._home_exists()

    def _read_key_file(self, path: Path) -> bytes | None:
        """The 32-byte key in `path`, or None if there is no such file."""
        from launcher.crypto import KEY_BYTES

        try:
            fd = _open_private(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        try:
            key = os.read(fd, KEY_BYTES + 1)
        finally:
            os.close(fd)
        if len(key) != KEY_BYTES:
            raise StoreError(f"the key file {path} is damaged: it should hold exactly {KEY_BYTES} bytes")
        return key

    def _publish_key_file(self, path: Path, key: bytes) -> bytes:
        """Put `key` at `path` unless a key is there already; returns the key that is there now.

        The key goes to a fresh temp file, is fsynced, then hard-linked into place: readers see a whole key or
        no file, never part of one, and link(2) never overwrites, so a key that is in place is never lost (of
        several processes creating the first key at once, one wins and the others use its key).
        """
        temp = self.home / f".key-{os.urandom(8).hex()}.tmp"
        fd = _open_private(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
        try:
            try:
                os.write(fd, key)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(temp, path)
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(f"cannot write the key file {path}: {exc.strerror}") from None
        finally:
            temp.unlink(missing_ok=True)
        _fsync_dir(self.home)
        published = self._read_key_file(path)
        if published is None:
            raise StoreError(f"the key file {path} vanished as it was made")
        return published

    @contextmanager
    def _key_lock(self, exclusive: bool = False) -> Iterator[_Lock]:
        """Hold the store's key lock: shared while reading key files, exclusive while changing them."""
        self._make_home()
        lock = _Lock(_open_private(self.home / _LOCK_FILE, os.O_RDWR | os.O_CREAT))
        try:
            lock.exclusive() if exclusive else lock.shared()
            yield lock
        finally:
            lock.release()

    # -- database --------------------------------------------------------------------------------------------

    def _read_header(self) -> _Header | None:
        with self._reading() as db:
            if db is None:
                return None
            row = db.execute("SELECT store_id, key_kind, kdf, data_key FROM store WHERE id = 1").fetchone()
        if row is None:
            raise StoreError(f"the store {self._db_path} is damaged: its key record is missing")
        return _Header(*row)

    def _current_header(self) -> _Header:
        header = self._read_header()
        if header is None:
            raise StoreError(f"the store in {self.home} disappeared while in use")
        return header

    def _reading(self) -> AbstractContextManager[sqlite3.Connection | None]:
        """A consistent snapshot of the store, or None when there is no store yet (reading never makes one)."""
        return self._transaction("BEGIN")

    @contextmanager
    def _writing(self, keys: _Keys | None = None) -> Iterator[sqlite3.Connection | None]:
        """A write transaction (None when there is no store): all of it commits, or none of it.

        With `keys`, the store must exist and be the one those keys came from: a value sealed under another
        store's data key could never be read again.
        """
        with self._transaction("BEGIN IMMEDIATE") as db:
            if keys is not None:
                row = db.execute("SELECT store_id FROM store WHERE id = 1").fetchone() if db else None
                if row is None or row[0] != keys.store_id:
                    raise StoreError(f"the store in {self.home} was replaced while in use; run the command again")
            yield db

    @contextmanager
    def _transaction(self, begin: str) -> Iterator[sqlite3.Connection | None]:
        """Run the body in one transaction; it commits only if the body returns. IMMEDIATE takes the write lock
        up front, so two writers that read first never deadlock: the second waits (busy_timeout) instead."""
        if not self._home_exists():
            yield None
            return
        if _stat_private(self._db_path) is None:
            self._check_no_orphan_key()
            yield None
            return
        with self._connection() as db:
            db.execute(begin)
            self._check_schema(db)
            yield db
            db.execute("COMMIT")

    @contextmanager
    def _connection(self, path: Path | None = None) -> Iterator[sqlite3.Connection]:
        """A connection to the existing database file (store.db unless `path`); SQLite errors become StoreError
        (they carry no values)."""
        path = path or self._db_path
        try:
            db = sqlite3.connect(f"{path.as_uri()}?mode=rw", uri=True, timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {path}: {_one_line(exc)}") from None
        try:
            db.execute("PRAGMA synchronous = FULL")  # a committed write survives a power cut, not just a crash
            yield db
        except sqlite3.Error as exc:
            raise StoreError(f"the store {path} cannot be used: {_one_line(exc)}") from None
        finally:
            db.close()  # an uncommitted transaction is rolled back

    def _check_schema(self, db: sqlite3.Connection) -> None:
        """A store.db is always a whole store (see `_create`): one without our schema (emptied, truncated to 0
        bytes, another file) is refused, never read as "no secrets yet" nor built over."""
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            raise StoreError(f"the store {self._db_path} was made by a newer version of launch")
        if version == 0:
            raise StoreError(
                f"the store {self._db_path} is empty or damaged (it holds no store): restore it from a backup, or "
                f"move it and the key file {self.home / _KEY_FILE} away to start a new, empty store"
            )


def _one_line(exc: sqlite3.Error) -> str:
    """SQLite's message on one line: a damaged schema's message quotes the names in it, which may hold newlines."""
    return " ".join(str(exc).split())


class _Lock:
    """flock(2) on an open lock file; closing the file releases it."""

    def __init__(self, fd: int):
        self._fd = fd

    def shared(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def exclusive(self) -> None:
        """Take the lock exclusively (from shared, this may let another process in first: re-read after)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        os.close(self._fd)


# -- rows ------------------------------------------------------------------------------------------------------


def _has_old_versions(db: sqlite3.Connection) -> bool:
    query = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'old_versions'"
    return db.execute(query).fetchone() is not None


def _exists(db: sqlite3.Connection | None, name: str) -> bool:
    return db is not None and db.execute("SELECT 1 FROM secrets WHERE name = ?", (name,)).fetchone() is not None


def _check_present(db: sqlite3.Connection | None, names: Sequence[str]) -> None:
    """NotFound naming every one of `names` that is not in the store."""
    missing = [n for n in names if not _exists(db, n)]
    if missing:
        raise _missing(missing)


def _metadata(db: sqlite3.Connection | None, name: str) -> tuple:
    """(name, description, created, updated, version, size) of `name`; NotFound if it is not there."""
    row = None
    if db is not None:
        row = db.execute(f"SELECT {_METADATA} FROM secrets WHERE name = ?", (name,)).fetchone()
    if row is None:
        raise _missing([name])
    return row


def _sealed_rows(db: sqlite3.Connection | None, names: Sequence[str]) -> dict[str, tuple[int, int, bytes]]:
    """name -> (version, size, sealed value) for those of `names` that exist, in one query."""
    if db is None or not names:
        return {}
    marks = ",".join("?" * len(names))
    query = f"SELECT name, version, size, sealed FROM secrets WHERE name IN ({marks})"
    return {row[0]: row[1:] for row in db.execute(query, names)}


def _insert(db: sqlite3.Connection, keys: _Keys, name: str, value: bytes, description: str, now: float) -> SecretInfo:
    db.execute(
        "INSERT INTO secrets (name, description, created, updated, version, size, sealed) VALUES (?, ?, ?, ?, 1, ?, ?)",
        (name, description, now, now, len(value), _seal(keys, name, 1, value)),
    )
    return SecretInfo(name, description, now, now, 1, len(value))


def _import_problem(db: sqlite3.Connection, name: str, value: bytes, added: list[str]) -> str | None:
    problem = name_problem(name) or value_problem(value)
    if problem:
        return problem
    if name in added:
        return "repeated: an earlier entry has this name"
    if _exists(db, name):
        return "exists (change it with `launch secret edit`)"
    return None


def _distinct_valid(names: Iterable[str]) -> list[str]:
    """`names` without repeats, in order; UsageError on the first invalid one."""
    distinct = list(dict.fromkeys(names))
    for name in distinct:
        validate_name(name)
    return distinct


def _parse_usage(line: bytes) -> UsageRecord | None:
    """A usage.log line as a record; None for a line torn by a crash or edited into something else."""
    try:
        data = json.loads(line)
        return UsageRecord(
            float(data["time"]), str(data["job"]), str(data["image"]), str(data["backend"]), dict(data["secrets"])
        )
    except (ValueError, KeyError, TypeError):
        return None


# -- sealing ---------------------------------------------------------------------------------------------------


def _seal(keys: _Keys, name: str, version: int, value: bytes) -> bytes:
    from launcher import crypto

    return crypto.seal(keys.data_key, value, crypto.secret_ad(keys.store_id, name, version))


def _unseal(keys: _Keys, name: str, version: int, sealed: bytes) -> bytes:
    from launcher import crypto

    try:
        return crypto.unseal(keys.data_key, sealed, crypto.secret_ad(keys.store_id, name, version))
    except crypto.AuthenticationFailed:
        raise _auth_failed(name) from None


# -- files -----------------------------------------------------------------------------------------------------


def _check_private(path: Path, st: os.stat_result) -> None:
    """Refuse, as OpenSSH does, a store file or folder that another user owns or that others could read."""
    if st.st_uid != os.geteuid():
        raise StoreError(f"refusing to use {path}: it belongs to another user (uid {st.st_uid})")
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        import shlex

        is_dir = stat.S_ISDIR(st.st_mode)
        raise StoreError(
            f"refusing to use {path}: its mode {mode:04o} lets other users {'into it' if is_dir else 'read it'};"
            f" fix it with `chmod {'700' if is_dir else '600'} {shlex.quote(str(path))}`"
        )


def _stat_private(path: Path, follow_symlinks: bool = False) -> os.stat_result | None:
    """stat `path` and check it is private; None if it does not exist."""
    try:
        st = os.stat(path, follow_symlinks=follow_symlinks)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StoreError(f"cannot use {path}: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise StoreError(f"refusing to use {path}: it is a symbolic link")
    _check_private(path, st)
    return st


def _open_private(path: Path, flags: int) -> int:
    """Open a store file (never through a symlink) and check it is a private regular file; one it creates is 0600.

    FileNotFoundError passes through (callers decide what a missing file means); other errors are StoreError.
    """
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise StoreError(f"refusing to use {path}: it is a symbolic link") from None
        if exc.errno == errno.EISDIR:
            raise _not_a_file(path, "a folder") from None
        raise StoreError(f"cannot open {path}: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a folder (or a device) where a store file belongs
            raise _not_a_file(path, "a folder" if stat.S_ISDIR(st.st_mode) else "not a regular file")
        _check_private(path, st)
        if flags & os.O_CREAT and stat.S_IMODE(st.st_mode) != 0o600:
            os.fchmod(fd, 0o600)  # the umask took bits away
    except BaseException:
        os.close(fd)
        raise
    return fd


def _not_a_file(path: Path, kind: str) -> StoreError:
    return StoreError(f"refusing to use {path}: it is {kind}; a store file belongs there")


def _fsync_dir(path: Path) -> None:
    """Make renames, links and unlinks in `path` durable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise StoreError(f"cannot sync the folder {path}: {exc.strerror}") from None


# -- passphrases -----------------------------------------------------------------------------------------------


def _passphrase() -> bytes:
    """The store's passphrase: $LAUNCH_PASSPHRASE, else asked on the terminal without echo."""
    return _ask_passphrase(PASSPHRASE_ENV, "Passphrase of the launch secret store: ", confirm=False)


def _new_passphrase() -> bytes:
    """The passphrase `rotate_key` switches to: $LAUNCH_NEW_PASSPHRASE, else asked twice on the terminal."""
    return _ask_passphrase(NEW_PASSPHRASE_ENV, "New passphrase of the launch secret store: ", confirm=True)


def _ask_passphrase(env: str, prompt: str, confirm: bool) -> bytes:
    given = os.environ.get(env)
    if given:
        return os.fsencode(given)
    if sys.stdin is None or not sys.stdin.isatty():
        raise StoreError(f"the store needs a passphrase: set {env}, or run on a terminal to be asked for it")
    import getpass

    try:
        passphrase = getpass.getpass(prompt)
        if confirm and getpass.getpass("Type it again: ") != passphrase:
            raise UsageError("the two passphrases differ; nothing was changed")
    except EOFError:
        raise UsageError("no passphrase given") from None
    if not passphrase:
        raise UsageError("the passphrase is empty")
    return os.fsencode(passphrase)
