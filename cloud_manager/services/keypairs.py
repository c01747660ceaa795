"""Key pairs (Nova's os-keypairs): a project's SSH public keys, by name.

A server created with ``key_name`` gets the key on its config drive. A pair created
without a public key is generated here (ed25519): its private key is returned once
and never stored. Keys are parsed with ``cryptography``, so what is stored is a key
an SSH server accepts, not any string that looks like one.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass

import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from cloud_manager.auth import Principal
from cloud_manager.db.models import KeyPair
from cloud_manager.errors import BadInput, Conflict, NotFound
from cloud_manager.services import quotas

NAME = re.compile(r"^[A-Za-z0-9 _.@-]{1,255}$")  # Nova's rule
MIN_RSA_BITS = 2048
MAX_KEY_LENGTH = 16384


@dataclass(frozen=True)
class Created:
    keypair: KeyPair
    private_key: str | None  # only for a generated pair


def check_name(name: str) -> None:
    if not NAME.match(name) or name.strip() != name:
        raise BadInput("field 'name': 1 to 255 letters, digits, spaces, '_', '.', '@' or "
                       "'-', not starting or ending with a space", field="name")


def parse_public_key(text: str) -> str:
    """The key in canonical OpenSSH form (``type base64 [comment]``); 400 naming
    ``public_key`` if it is not one, or too weak."""
    text = text.strip()
    if not text or len(text) > MAX_KEY_LENGTH or "\n" in text:
        raise BadInput("field 'public_key': expected one OpenSSH public key line",
                       field="public_key")
    try:
        key = serialization.load_ssh_public_key(text.encode())
    except (ValueError, TypeError, UnicodeError) as exc:
        raise BadInput(f"field 'public_key': not an OpenSSH public key ({exc})",
                       field="public_key") from None
    if isinstance(key, dsa.DSAPublicKey):
        raise BadInput("field 'public_key': DSA keys are not accepted (use ed25519, ecdsa "
                       "or rsa)", field="public_key")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise BadInput(f"field 'public_key': an RSA key needs at least {MIN_RSA_BITS} bits, "
                       f"this one has {key.key_size}", field="public_key")
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey
                      | ed25519.Ed25519PublicKey):
        raise BadInput("field 'public_key': unsupported key type", field="public_key")
    return text


def fingerprint(public_key: str) -> str:
    """As Nova shows it: MD5 of the key blob, colon-separated hex."""
    blob = base64.b64decode(public_key.split()[1])
    digest = hashlib.md5(blob, usedforsecurity=False).hexdigest()
    return ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def generate() -> tuple[str, str]:
    """A new ed25519 pair: (OpenSSH public key, OpenSSH private key)."""
    private = ed25519.Ed25519PrivateKey.generate()
    public = private.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                               serialization.PublicFormat.OpenSSH).decode()
    secret = private.private_bytes(serialization.Encoding.PEM,
                                   serialization.PrivateFormat.OpenSSH,
                                   serialization.NoEncryption()).decode()
    return public, secret


def create(session: Session, principal: Principal, *, name: str,
           public_key: str | None = None) -> Created:
    """Import ``public_key``, or generate a pair; 409 if the project has the name."""
    check_name(name)
    private_key = None
    if public_key is None:
        public_key, private_key = generate()
    else:
        public_key = parse_public_key(public_key)
    quotas.check_one_more(session, principal.project_id, "key_pairs")
    keypair = KeyPair(id=str(uuid.uuid4()), project_id=principal.project_id, name=name,
                      type="ssh", public_key=public_key, fingerprint=fingerprint(public_key))
    try:
        with session.begin_nested():
            session.add(keypair)
            session.flush()
    except IntegrityError:
        raise Conflict(f"key pair '{name}' already exists in this project",
                       field="name") from None
    return Created(keypair, private_key)


def listing(session: Session, principal: Principal) -> list[KeyPair]:
    return list(session.scalars(sa.select(KeyPair)
                                .where(KeyPair.project_id == principal.project_id)
                                .order_by(KeyPair.name)))


def find(session: Session, principal: Principal, name: str) -> KeyPair | None:
    return session.scalars(sa.select(KeyPair).where(
        KeyPair.project_id == principal.project_id, KeyPair.name == name)).first()


def get(session: Session, principal: Principal, name: str) -> KeyPair:
    """A key pair of the caller's project; another project's is as unknown (404)."""
    found = find(session, principal, name)
    if found is None:
        raise NotFound(f"key pair '{name}' not found")
    return found


def for_server(session: Session, principal: Principal, name: str) -> KeyPair:
    """The key pair a new server names: unknown is the request's fault (400)."""
    found = find(session, principal, name)
    if found is None:
        raise BadInput(f"field 'key_name': no key pair named '{name}' in this project",
                       field="key_name")
    return found


def delete(session: Session, principal: Principal, name: str) -> None:
    """Servers made with the key keep their copy of it."""
    session.delete(get(session, principal, name))
