# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Client-side SCRAM-SHA-256 verifiers: RFC 7677's exchange, PostgreSQL's format and SASLprep as PostgreSQL does it."""

import base64
import hashlib
import hmac
import re

import pytest

from ansible_collections.dbre.rds.plugins.module_utils import scram

# RFC 7677 section 3: user "user", password "pencil".
RFC_SALT = "W22ZaJ0SNY7soEsUEjb6gQ=="
RFC_CLIENT_FIRST_BARE = "n=user,r=rOprNGfwEbeRWgbNEkqO"
RFC_SERVER_FIRST = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
RFC_CLIENT_FINAL_BARE = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
RFC_CLIENT_PROOF = "dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
RFC_SERVER_SIGNATURE = "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
FORMAT = re.compile(r"^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$")


def _keys(verifier):
    match = FORMAT.match(verifier)
    assert match, verifier
    return int(match.group(1)), *(base64.b64decode(group) for group in match.groups()[1:])


def test_verifier_reproduces_the_rfc_7677_exchange():
    iterations, salt, stored_key, server_key = _keys(scram.verifier("pencil", base64.b64decode(RFC_SALT)))
    assert (iterations, base64.b64encode(salt).decode()) == (4096, RFC_SALT)
    auth_message = ",".join((RFC_CLIENT_FIRST_BARE, RFC_SERVER_FIRST, RFC_CLIENT_FINAL_BARE)).encode()
    # The server proves itself with ServerKey; the client's proof, unmasked with StoredKey, hashes back to StoredKey.
    signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
    assert base64.b64encode(signature).decode() == RFC_SERVER_SIGNATURE
    client_signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
    client_key = bytes(a ^ b for a, b in zip(base64.b64decode(RFC_CLIENT_PROOF), client_signature))
    assert hashlib.sha256(client_key).digest() == stored_key


def test_verifier_has_postgresql_format_and_a_fresh_salt_each_time():
    first, second = scram.verifier("Same-password-1"), scram.verifier("Same-password-1")
    assert first != second
    for verifier in (first, second):
        iterations, salt, stored_key, server_key = _keys(verifier)
        assert (iterations, len(salt), len(stored_key), len(server_key)) == (4096, 16, 32, 32)
        assert "Same-password-1" not in verifier


def test_same_salt_same_verifier():
    salt = bytes(range(16))
    assert scram.verifier("pw-1", salt) == scram.verifier("pw-1", salt) != scram.verifier("pw-2", salt)


@pytest.mark.parametrize("password", ["", None, 42])
def test_verifier_refuses_what_is_not_a_password(password):
    with pytest.raises(ValueError, match="non-empty password"):
        scram.verifier(password)


@pytest.mark.parametrize("password, expected", [
    ("plain-ASCII pass", b"plain-ASCII pass"),
    ("tab\there", b"tab\there"),  # pure ASCII skips SASLprep in PostgreSQL, control characters included
    ("I\u00adX", b"IX"),  # soft hyphen is mapped to nothing (RFC 4013 example)
    ("user\u00a0name", b"user name"),  # a non-ASCII space becomes a space
    ("\u00aa", "a".encode()),  # NFKC (RFC 4013 example)
    ("\u2168", b"IX"),  # NFKC (RFC 4013 example)
    ("p\u00e4ssw\u00f6rd", "p\u00e4ssw\u00f6rd".encode()),
    ("\uff50\uff41\uff53\uff53", b"pass"),  # full-width letters
    ("x\u0007\u00e9", "x\u0007\u00e9".encode()),  # prohibited control character: raw bytes, as PostgreSQL falls back
    ("\u0627\u0031", "\u0627\u0031".encode()),  # RandALCat first but not last: bidi rule refuses, raw bytes
    ("\u0627\u0031\u0628", "\u0627\u0031\u0628".encode()),
    ("\u00ad", "\u00ad".encode()),  # maps to nothing at all: PostgreSQL keeps the raw password
])
def test_saslprep_as_postgresql_applies_it(password, expected):
    assert scram.saslprep(password) == expected
