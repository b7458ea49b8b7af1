"""Electronic signatures (21 CFR 11.50, 11.70, 11.200): re-entered password, meaning, binding."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import Field
from sqlmodel import Session

from lims.accounts import throttle
from lims.accounts.users import Actor, check_password
from lims.audit import canonical_json
from lims.errors import BadRequest, Refused
from lims.inputs import Input
from lims.models import Signature, User, utcnow

MEANINGS = ("review", "approval", "release", "rejection", "responsibility")


def content_hash(content: dict[str, Any]) -> str:
    """Hash the exact record content a signature applies to."""
    return hashlib.sha256(canonical_json(content).encode()).hexdigest()


def _signature_hash(sig: Signature) -> str:
    return hashlib.sha256(
        canonical_json(
            [
                sig.user_id,
                sig.username,
                sig.printed_name,
                sig.meaning,
                sig.signed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                sig.record_type,
                sig.record_id,
                sig.content_hash,
            ]
        ).encode()
    ).hexdigest()


class SignatureIn(Input):
    """A signature as a request gives it: the password re-entered and the meaning it carries."""

    # Compared, never stored as given: the password is checked, the meaning must match exactly.
    password: str = Field(min_length=1, max_length=500)
    meaning: str = Field(min_length=1, max_length=32)
    username: str | None = Field(default=None, max_length=64)


class SignatureRefused(Refused):
    code = "signature_refused"


def sign(
    session: Session,
    *,
    actor: Actor,
    password: str | None,
    meaning: str | None,
    record_type: str,
    record_id: str,
    content: dict[str, Any],
    username: str | None = None,
) -> Signature:
    """Sign content of a record as actor, after re-checking the actor's password."""
    if meaning not in MEANINGS:
        raise BadRequest(
            f"a signature needs a meaning: one of {', '.join(MEANINGS)}", code="signature_meaning"
        )
    if not password:
        raise BadRequest("a signature needs your password", code="signature_password")
    if username is not None and username != actor.username:
        # A signature is executed only by its genuine owner (11.200(a)(3)).
        raise SignatureRefused("you can only sign as yourself")
    user: User = actor.user
    address = throttle.CLIENT_ADDRESS.get()
    waiting = throttle.wait(
        session, username=user.username, user=user, address=address, now=utcnow()
    )
    if waiting:
        raise throttle.Throttled(
            f"signature refused: too many wrong passwords; try again in {waiting} s, or ask an "
            "administrator to unlock your account",
            code="account_locked",
            retry_after=waiting,
        )
    if not check_password(user, password):
        user_id, username = user.id, user.username

        def count_failure(db: Session, config: dict[str, Any]) -> None:
            # Guessing a password through the signature dialog is throttled like sign-in
            # (21 CFR 11.300(d)); this runs after the refused change was rolled back.
            throttle.count_failure(
                db,
                username=username,
                user=db.get(User, user_id),
                address=address,
                limits=throttle.Limits.from_config(config),
                what="e-signature",
            )

        raise SignatureRefused(
            "signature refused: the password is wrong; nothing was changed",
            audit={
                "action": "signature.refused",
                "entity_type": record_type,
                "entity_id": record_id,
                "reason": f"wrong password for {meaning} signature",
            },
            after_rollback=count_failure,
        )
    if user.failed_logins or user.lockouts:
        throttle.count_success(user, address, signed_in=False)  # as at sign-in
        session.add(user)
    sig = Signature(
        user_id=user.id,
        username=user.username,
        printed_name=user.full_name,
        meaning=meaning,
        signed_at=utcnow(),
        record_type=record_type,
        record_id=record_id,
        content_hash=content_hash(content),
        hash="",
    )
    sig.hash = _signature_hash(sig)
    session.add(sig)
    session.flush()
    return sig


def manifestation(sig: Signature) -> dict[str, Any]:
    """Return what the signed audit event records of its signature (chained with the event).

    The signature row alone is only self-consistent: anyone able to edit it can recompute its
    hash. Written into the hash-chained event, its name, meaning, time and hash are fixed.
    """
    return {
        "hash": sig.hash,
        "printed_name": sig.printed_name,
        "username": sig.username,
        "meaning": sig.meaning,
        "signed_at": sig.signed_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }


def signed_content(after: dict[str, Any]) -> dict[str, Any]:
    """Return the record content a signed event's 'after' holds (without the manifestation)."""
    return {k: v for k, v in after.items() if k != "signature"}


def verify_signature(
    sig: Signature, *, record_type: str, record_id: str, content: dict[str, Any]
) -> bool:
    """Tell whether sig is intact and was made for exactly this record content."""
    return (
        sig.hash == _signature_hash(sig)
        and sig.record_type == record_type
        and sig.record_id == record_id
        and sig.content_hash == content_hash(content)
    )


def signature_dict(sig: Signature) -> dict[str, Any]:
    """Return the signature manifestation (11.50): printed name, time, meaning."""
    return {
        "id": sig.id,
        "printed_name": sig.printed_name,
        "username": sig.username,
        "meaning": sig.meaning,
        "signed_at": sig.signed_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "record": f"{sig.record_type}/{sig.record_id}",
        "content_hash": sig.content_hash,
        "hash": sig.hash,
    }


def sign_required(
    session: Session,
    *,
    actor: Actor,
    given: SignatureIn | None,
    meaning: str,
    what: str,
    record_type: str,
    record_id: str,
    content: dict[str, Any],
) -> Signature:
    """Sign content with the signature a move (what) needs, refusing a missing or wrong one."""
    if given is None:
        raise Refused(
            f"{what} needs an electronic signature (your password, meaning {meaning!r})",
            code="signature_required",
        )
    if given.meaning != meaning:
        raise BadRequest(f"{what} is signed with the meaning {meaning!r}", code="signature_meaning")
    return sign(
        session,
        actor=actor,
        password=given.password,
        meaning=given.meaning,
        username=given.username,
        record_type=record_type,
        record_id=record_id,
        content=content,
    )
