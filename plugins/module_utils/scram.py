# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SCRAM-SHA-256 password verifiers computed on the client, as ``psql``'s ``\\password`` sends them.

A role created or changed with ``PASSWORD 'SCRAM-SHA-256$...'`` stores that verifier as is, so the statement text that
reaches ``pg_stat_statements``, ``pg_stat_activity`` and a ``log_statement`` server log holds the verifier, never the
password (RFC 5802 and RFC 7677; PostgreSQL's format is ``SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>``,
all base64).

PostgreSQL prepares the password with SASLprep (RFC 4013) before hashing, on the server when it hashes a plaintext
password and in libpq when a client logs in, and falls back to the raw UTF-8 bytes when SASLprep refuses the
password (a prohibited or unassigned character, or bad bidirectional text). :func:`saslprep` does the same, so a
verifier made here accepts exactly the logins the server would accept for that password. For an ASCII password it is
the identity, as in PostgreSQL (which skips SASLprep for pure ASCII, control characters included).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import stringprep
import unicodedata

ITERATIONS = 4096  # PostgreSQL's scram_iterations default
SALT_BYTES = 16  # what PostgreSQL and psql generate
PREFIX = "SCRAM-SHA-256$"

# RFC 4013 section 2.3: what SASLprep refuses, besides unassigned code points (A.1, "stored strings"); C.1.2
# (non-ASCII space) is not listed because mapping has already turned it into a space.
_PROHIBITED = (
    stringprep.in_table_c21_c22,  # control characters
    stringprep.in_table_c3,  # private use
    stringprep.in_table_c4,  # non-character code points
    stringprep.in_table_c5,  # surrogates
    stringprep.in_table_c6,  # inappropriate for plain text
    stringprep.in_table_c7,  # inappropriate for canonical representation
    stringprep.in_table_c8,  # change display properties or deprecated
    stringprep.in_table_c9,  # tagging characters
    stringprep.in_table_a1,  # unassigned in Unicode 3.2
)


def saslprep(password: str) -> bytes:
    """The bytes PostgreSQL hashes for ``password``: SASLprep's output, or the raw UTF-8 when SASLprep refuses it."""
    raw = password.encode("utf-8")
    if password.isascii():
        return raw
    # Mapping (RFC 4013 2.1): non-ASCII spaces become a space, "commonly mapped to nothing" characters go.
    mapped = "".join(" " if stringprep.in_table_c12(char) else char
                     for char in password if not stringprep.in_table_b1(char))
    if not mapped:
        return raw
    # PostgreSQL's pg_saslprep checks prohibited and bidirectional characters on the mapped text, before NFKC; so
    # does this, or a password PostgreSQL hashes raw would get a verifier of its normalized form.
    if any(check(char) for char in mapped for check in _PROHIBITED):
        return raw
    # Bidirectional text (RFC 3454 section 6): with any RandALCat character, no LCat one, and RandALCat at both ends.
    if any(stringprep.in_table_d1(char) for char in mapped):
        if any(stringprep.in_table_d2(char) for char in mapped):
            return raw
        if not (stringprep.in_table_d1(mapped[0]) and stringprep.in_table_d1(mapped[-1])):
            return raw
    normalized = unicodedata.normalize("NFKC", mapped)
    return normalized.encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def verifier(password: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    """The SCRAM-SHA-256 verifier of ``password`` (a fresh random 16-byte salt unless one is given, for tests)."""
    if not isinstance(password, str) or not password:
        raise ValueError("a SCRAM verifier needs a non-empty password")
    if salt is None:
        salt = os.urandom(SALT_BYTES)
    salted = hashlib.pbkdf2_hmac("sha256", saslprep(password), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"{PREFIX}{iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"
