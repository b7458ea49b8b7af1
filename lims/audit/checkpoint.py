"""Chain checkpoints: the trail's head signed with an Ed25519 key kept outside the database.

What a checkpoint proves, where the key lives and how to rotate it: docs/audit.md.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine, make_url
from sqlmodel import Session

from lims.audit.chain import GENESIS_HASH, canonical_json, ts_text
from lims.db import from_db_time, read_only
from lims.models import AuditEvent, AuditHead

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: one writing process per folder (see docs)
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("lims.audit")

FILE_NAME = "checkpoints.jsonl"
_SIGNED_FIELDS = ("v", "seq", "hash", "ts", "at", "why", "key", "prev")


class CheckpointError(Exception):
    """The checkpoint file or key cannot be used; seq names the checkpoint concerned, if any."""

    def __init__(self, message: str, seq: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.seq = seq


@dataclass(frozen=True)
class Checkpoint:
    """One signed line of the checkpoint file: the chain head (seq, hash, time) when written."""

    seq: int
    hash: str
    ts: str  # the head event's time
    at: str  # when the checkpoint was written
    why: str  # schedule, report, cli, rotate
    key: str  # the signing key's fingerprint
    line: int

    def to_dict(self) -> dict[str, Any]:
        """Return the JSON form (what verify answers and reports print)."""
        return {
            "seq": self.seq,
            "hash": self.hash,
            "ts": self.ts,
            "written_at": self.at,
            "key": self.key,
        }

    def summary(self) -> str:
        """Return the one line a report prints about the checkpoint it was made against."""
        return (
            f"checkpoint seq {self.seq}, hash {self.hash[:16]}..., written {self.at}, "
            f"key {self.key[:16]}"
        )


def fingerprint(public: Ed25519PublicKey) -> str:
    """Return a key's fingerprint: SHA-256 of its raw 32 bytes, in hex."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def _public_pem(public: Ed25519PublicKey) -> bytes:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _load_public(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"cannot read the public key {path}: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointError(f"{path} is not an Ed25519 public key")
    return key


def _line_digest(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _now_text() -> str:
    return ts_text(datetime.now(UTC))


@dataclass
class _Verified:
    """What an earlier read verified: the file's first `size` bytes, and their checkpoints."""

    size: int
    digest: str
    checkpoints: list[Checkpoint]
    last_line: str  # digest of the last line, the next line's prev


class CheckpointStore:
    """An append-only file of signed checkpoints, and the key that signs them."""

    def __init__(self, directory: Path | str, key_path: Path | str) -> None:
        self.directory = Path(directory)
        self.key_path = Path(key_path)
        self.path = self.directory / FILE_NAME
        self.keys_dir = self.directory / "keys"
        self._lock = threading.Lock()
        self._verified: _Verified | None = None

    # --- keys -----------------------------------------------------------------------------

    @property
    def public_key_path(self) -> Path:
        return self.key_path.with_name(self.key_path.name + ".pub")

    def _private_key(self, *, create: bool) -> Ed25519PrivateKey | None:
        """Return the signing key; generate it (mode 0600, public key alongside) if asked."""
        path = self.key_path
        if not path.exists():
            if not create:
                return None
            return self._generate()
        if os.name == "posix" and path.stat().st_mode & 0o077:
            raise CheckpointError(
                f"the checkpoint key {path} can be read by other users: chmod 600 it"
            )
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read the checkpoint key {path}: {err}") from err
        if not isinstance(key, Ed25519PrivateKey):
            raise CheckpointError(f"the checkpoint key {path} is not an Ed25519 key")
        return key

    def _generate(self) -> Ed25519PrivateKey:
        path = self.key_path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = Ed25519PrivateKey.generate()
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        try:
            # O_EXCL: of two processes starting at once, one key wins and the other reads it.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            return self._private_key(create=False)  # type: ignore[return-value]
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        self.public_key_path.write_bytes(_public_pem(key.public_key()))
        log.info("generated checkpoint key %s (%s)", path, fingerprint(key.public_key())[:16])
        return key

    def public_key(self) -> Ed25519PublicKey | None:
        """Return the configured key's public half (the .pub file, else the private key's)."""
        if self.public_key_path.exists():
            public = _load_public(self.public_key_path)
            # Whoever verifies need not be able to read the private key (a QA account).
            readable = os.access(self.key_path, os.R_OK)
            private = self._private_key(create=False) if readable else None
            if private is not None and fingerprint(private.public_key()) != fingerprint(public):
                raise CheckpointError(
                    f"{self.public_key_path} is not the public key of {self.key_path}"
                )
            return public
        private = self._private_key(create=False)
        return None if private is None else private.public_key()

    def _known_keys(self) -> dict[str, Ed25519PublicKey]:
        """Return the public keys checkpoints may be signed with: the configured and retired."""
        keys: dict[str, Ed25519PublicKey] = {}
        if self.keys_dir.is_dir():
            for path in sorted(self.keys_dir.glob("*.pub")):
                public = _load_public(path)
                fp = fingerprint(public)
                if path.stem != fp:
                    raise CheckpointError(f"{path} holds the key {fp[:16]}, not {path.stem[:16]}")
                keys[fp] = public
        current = self.public_key()
        if current is not None:
            keys[fingerprint(current)] = current
        return keys

    def _publish(self, public: Ed25519PublicKey) -> None:
        """Keep the public key beside the checkpoints it verifies (it outlives a rotation)."""
        self.keys_dir.mkdir(parents=True, exist_ok=True)
        path = self.keys_dir / f"{fingerprint(public)}.pub"
        if not path.exists():
            path.write_bytes(_public_pem(public))

    # --- reading --------------------------------------------------------------------------

    def read(self, *, every_signature: bool = False) -> list[Checkpoint]:
        """Return every checkpoint, oldest first, after verifying the file; CheckpointError if not.

        Each line is signed by a known key and names the digest of the line before it, so a
        line changed, inserted or removed in the middle breaks the file. Lines verified by an
        earlier call in this process are not checked again while the file only grew.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return []
        except OSError as err:
            raise CheckpointError(f"cannot read {self.path}: {err}") from err
        done = self._verified
        if done is not None and (
            len(data) < done.size or _line_digest(data[: done.size]) != done.digest
        ):
            done = None
        if done is None:
            done = _Verified(0, _line_digest(b""), [], GENESIS_HASH)
        checkpoints = list(done.checkpoints)
        prev = done.last_line
        keys = self._known_keys() if len(data) > done.size else {}
        offset = done.size
        lineno = len(checkpoints)
        # Every line names the digest of the one before, so a key's newest line, once its
        # signature verifies, vouches for all lines before it (the writer verified them before
        # signing): only those signatures need checking, unless every_signature is asked for.
        pending: Callable[[], None] | None = None
        while offset < len(data):
            end = data.find(b"\n", offset)
            lineno += 1
            if end < 0:
                raise CheckpointError(
                    f"checkpoint file line {lineno} is incomplete (no line end): the file was cut "
                    "or is being written by something else"
                )
            raw = data[offset:end]
            cp, signature = self._check_line(
                raw, lineno, prev, keys, checkpoints[-1] if checkpoints else None
            )
            if pending is not None and (cp.key != checkpoints[-1].key or every_signature):
                pending()
            pending = signature
            checkpoints.append(cp)
            prev = _line_digest(raw)
            offset = end + 1
        if pending is not None:
            pending()
        self._verified = _Verified(len(data), _line_digest(data), checkpoints, prev)
        if checkpoints:
            newest = checkpoints[-1]
            current = self.public_key()
            if current is None or fingerprint(current) != newest.key:
                configured = "none" if current is None else fingerprint(current)[:16]
                raise CheckpointError(
                    f"the newest checkpoint (seq {newest.seq}, line {newest.line}) is signed by "
                    f"key {newest.key[:16]}, not by the configured key ({configured}): restore "
                    "the key, or after a rotation write a checkpoint (flask audit checkpoint)",
                    newest.seq,
                )
        return checkpoints

    def _check_line(
        self,
        raw: bytes,
        lineno: int,
        prev: str,
        keys: dict[str, Ed25519PublicKey],
        before: Checkpoint | None,
    ) -> tuple[Checkpoint, Callable[[], None]]:
        """Check one line's form and link; return it and the check of its signature."""
        where = f"checkpoint file line {lineno}"
        try:
            body = json.loads(raw)
            signed = {name: body[name] for name in _SIGNED_FIELDS}
            sig = base64.b64decode(body["sig"], validate=True)
            seq = body["seq"]
            if type(seq) is not int or not isinstance(body["hash"], str):
                raise TypeError("seq and hash")
        except (ValueError, KeyError, TypeError) as err:
            raise CheckpointError(f"{where} is not a checkpoint ({err})") from err
        if signed["prev"] != prev:
            raise CheckpointError(
                f"{where} (seq {seq}) does not follow the line before it: a checkpoint was "
                "changed, inserted or removed",
                seq,
            )
        public = keys.get(signed["key"])
        if public is None:
            raise CheckpointError(
                f"{where} (seq {seq}) is signed by an unknown key {str(signed['key'])[:16]}", seq
            )

        def signature() -> None:
            try:
                public.verify(sig, canonical_json(signed).encode())
            except InvalidSignature:
                raise CheckpointError(
                    f"{where}: the signature of the checkpoint of seq {seq} does not verify", seq
                ) from None

        if before is not None and (
            seq < before.seq or (seq == before.seq and body["hash"] != before.hash)
        ):
            raise CheckpointError(
                f"{where} (seq {seq}) goes back behind the checkpoint before it (seq {before.seq})",
                seq,
            )
        cp = Checkpoint(seq, body["hash"], body["ts"], body["at"], body["why"], body["key"], lineno)
        return cp, signature

    def latest(self) -> Checkpoint | None:
        """Return the newest checkpoint (the file verified), or None if there is none yet."""
        checkpoints = self.read()
        return checkpoints[-1] if checkpoints else None

    # --- writing --------------------------------------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[Any]:
        """Open the file for appending, held against other threads and processes."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            with os.fdopen(fd, "ab") as fh:
                if fcntl is not None:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
                yield fh

    def write(self, engine: Engine, why: str) -> Checkpoint:
        """Append a checkpoint of the committed head unless the newest one is of that head.

        Refuses (CheckpointError) when the file does not verify, or when the trail no longer
        holds the newest checkpoint's event as it was: a checkpoint must never vouch for a
        truncated or rewritten trail.
        """
        with self._locked() as fh:
            key = self._private_key(create=True)
            assert key is not None
            return self._append(fh, engine, key, why)

    def _append(self, fh: Any, engine: Engine, key: Ed25519PrivateKey, why: str) -> Checkpoint:
        """Append the head's checkpoint to fh (opened and locked by _locked)."""
        public = key.public_key()
        fp = fingerprint(public)
        self._publish(public)
        checkpoints = self._read_for_append()
        last = checkpoints[-1] if checkpoints else None
        head_seq, head_hash, head_ts, at_last = _committed_head(engine, last.seq if last else None)
        if last is not None:
            problem = _mismatch(last, at_last, head_seq)
            if problem is not None:
                raise CheckpointError(f"no checkpoint written: {problem}", last.seq)
            if (last.seq, last.hash, last.key) == (head_seq, head_hash, fp):
                return last
        signed = {
            "v": 1,
            "seq": head_seq,
            "hash": head_hash,
            "ts": head_ts,
            "at": _now_text(),
            "why": why,
            "key": fp,
            "prev": self._verified.last_line if self._verified else GENESIS_HASH,
        }
        sig = base64.b64encode(key.sign(canonical_json(signed).encode())).decode()
        line = json.dumps({**signed, "sig": sig}, sort_keys=True, separators=(",", ":"))
        # One write of one line on a file opened O_APPEND: never over an earlier line.
        fh.write(line.encode() + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
        return self.read()[-1]

    def _read_for_append(self) -> list[Checkpoint]:
        """Read the file to append to; a newest line by another known key is no error here."""
        try:
            return self.read()
        except CheckpointError as err:
            # After a rotation the newest line is the old key's: the new key's first line is
            # what puts that right. Anything else wrong with the file refuses the append.
            done = self._verified
            size = self.path.stat().st_size if self.path.exists() else 0
            if done is None or done.size != size or not done.checkpoints:
                raise CheckpointError(
                    f"refusing to append to a checkpoint file that does not verify: {err}", err.seq
                ) from err
            return done.checkpoints

    def rotate(self, engine: Engine) -> tuple[str, Checkpoint]:
        """Replace the signing key with a new one; return the old fingerprint and its first line.

        The old private key is renamed beside the new one (KEY.retired-FINGERPRINT) for the
        centre to move offline or destroy; its public key stays in the checkpoint folder, which
        is what verifies the lines it signed. Writers wait on the file lock meanwhile.
        """
        with self._locked() as fh:
            old = self._private_key(create=False)
            old_fp = ""
            if old is not None:
                self.read()  # the file must verify under the old key before the key changes
                old_fp = fingerprint(old.public_key())
                self._publish(old.public_key())
                retired = self.key_path.with_name(f"{self.key_path.name}.retired-{old_fp[:16]}")
                os.replace(self.key_path, retired)
                self.public_key_path.unlink(missing_ok=True)
            return old_fp, self._append(fh, engine, self._generate(), "rotate")


def _committed_head(engine: Engine, at_seq: int | None) -> tuple[int, str, str, str | None | bool]:
    """Return the committed head (seq, hash, time) and the hash of event at_seq (None: missing)."""
    with read_only(), engine.connect() as conn:
        seq, head_hash, ts = conn.execute(
            select(AuditHead.seq, AuditHead.hash, AuditHead.ts).where(AuditHead.id == 1)
        ).one()
        at = _hash_at(conn, at_seq) if at_seq else False
    when = from_db_time(ts)
    return seq, head_hash, "" if when is None else ts_text(when), at


def _hash_at(conn: Connection, seq: int) -> str | None:
    return conn.execute(select(AuditEvent.hash).where(AuditEvent.seq == seq)).scalar()


def _mismatch(cp: Checkpoint, stored: str | None | bool, head_seq: int) -> str | None:
    """Say how the trail differs from checkpoint cp, given the hash stored at its seq, or None."""
    if stored is False or stored == cp.hash:
        return None
    if stored is None:
        gone = (
            f"event {cp.seq} was"
            if head_seq + 1 == cp.seq
            else f"events {head_seq + 1} to {cp.seq} were"
        )
        return (
            f"the checkpoint written {cp.at} vouches for events up to seq {cp.seq}, but the "
            f"trail ends at seq {head_seq}: {gone} removed"
        )
    return (
        f"event {cp.seq} is not the one the checkpoint written {cp.at} vouches for (hash "
        f"{cp.hash[:16]}..., now {stored[:16]}...): the trail was rewritten"
    )


# --- the store an engine's trail is checkpointed in ------------------------------------------

_stores: weakref.WeakKeyDictionary[Engine, CheckpointStore] = weakref.WeakKeyDictionary()


def attach(engine: Engine, store: CheckpointStore | None) -> None:
    """Checkpoint engine's trail in store (create_app does it from the configuration)."""
    if store is None:
        _stores.pop(engine, None)
    else:
        _stores[engine] = store


def store_for(bind: Session | Engine) -> CheckpointStore | None:
    """Return the checkpoint store of a session's or engine's database, if one is attached."""
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    return _stores.get(getattr(engine, "engine", engine))


def default_directory(instance: Path, database_url: str) -> Path:
    """Return the checkpoint folder used when none is configured: one per database."""
    url = make_url(database_url)
    name = Path(url.database or "db").stem or "db"
    shown = url.render_as_string(hide_password=True)
    if url.get_backend_name() == "sqlite" and url.database:
        shown = str(Path(url.database).resolve())
    return instance / "checkpoints" / f"{name}-{hashlib.sha256(shown.encode()).hexdigest()[:8]}"


def on_report(bind: Session | Engine) -> tuple[Checkpoint | None, str | None]:
    """Checkpoint the head for a report; return the checkpoint, or None and why none was written.

    The reason is for the report's reader, who may be a client: the details (paths, keys) go to
    the server log only.
    """
    store = store_for(bind)
    if store is None:
        return None, "no checkpoint folder is configured"
    engine = bind.get_bind() if isinstance(bind, Session) else bind
    try:
        return store.write(engine, "report"), None
    except (CheckpointError, OSError) as err:
        log.error("checkpoint for a report not written: %s", err)
        return None, "it could not be written (the server log says why; run flask audit verify)"


# --- verifying the trail against the checkpoints ---------------------------------------------


def check(session: Session, result: Any, store: CheckpointStore) -> Any:
    """Return verify's result judged against the newest checkpoint as well.

    result is a VerifyResult of the chain as session sees it. The newest checkpoint must be
    held by the trail: its event present (else the tail was cut) and with the hash it signed
    (else the trail was rewritten, and the earliest checkpoint that no longer holds bounds
    where). A checkpoint newer than session's snapshot is looked up in the committed trail.
    """
    try:
        checkpoints = store.read()
    except CheckpointError as err:
        if not result.ok:
            return result
        return replace(result, ok=False, first_bad_seq=err.seq, problem=err.message)
    if not checkpoints:
        return result
    newest = checkpoints[-1]
    result = replace(result, checkpoint=newest.to_dict())
    if not result.ok:
        return result
    if newest.seq <= result.head_seq:
        conn = session.connection()
        return _judge(result, checkpoints, lambda seq: _hash_at(conn, seq), result.head_seq)
    engine = session.get_bind()
    with read_only(), engine.connect() as conn:
        top = conn.execute(select(AuditHead.seq).where(AuditHead.id == 1)).scalar() or 0
        return _judge(result, checkpoints, lambda seq: _hash_at(conn, seq), top)


def _judge(
    result: Any, checkpoints: list[Checkpoint], hash_at: Callable[[int], str | None], top: int
) -> Any:
    newest = checkpoints[-1]
    stored = hash_at(newest.seq)
    if stored == newest.hash:
        return result
    if stored is None:
        return replace(
            result,
            ok=False,
            first_bad_seq=top + 1,
            problem=_mismatch(newest, None, top),
        )
    # The earliest checkpoint the trail no longer holds (a rewrite breaks every one after it).
    lo, hi = 0, len(checkpoints) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if hash_at(checkpoints[mid].seq) != checkpoints[mid].hash:
            hi = mid
        else:
            lo = mid + 1
    first = checkpoints[lo]
    since = checkpoints[lo - 1].seq if lo else 0
    problem = _mismatch(first, hash_at(first.seq), top)
    return replace(
        result,
        ok=False,
        first_bad_seq=first.seq,
        problem=f"{problem} after seq {since}",
    )


# --- the schedule ----------------------------------------------------------------------------


def start_schedule(engine: Engine, store: CheckpointStore, every_s: float) -> threading.Event:
    """Write a checkpoint now and every every_s seconds in a thread; set the event to stop."""
    stop = threading.Event()

    def run() -> None:
        while True:
            try:
                store.write(engine, "schedule")
            except Exception:  # noqa: BLE001 - logged; the next round tries again
                log.exception("scheduled checkpoint not written")
            if stop.wait(every_s):
                return

    threading.Thread(target=run, name="audit-checkpoint", daemon=True).start()
    return stop
