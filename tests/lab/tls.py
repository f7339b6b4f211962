# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS for the lab's PostgreSQL endpoints: one CA per lab state directory, one server certificate per cluster.

RDS serves every PostgreSQL endpoint over TLS with a certificate of its regional CA (the ``rds-ca-rsa2048-g1``
bundle clients pass as ``sslrootcert``). The lab does the same with its own CA::

    <root>/tls/ca.crt    the CA certificate clients trust (LAB_CA_CERT, LabControl.ca_cert(), /_lab/health)
    <root>/tls/ca.key    its key (0600), used only to sign server certificates

The CA is made once per state directory (reused by a lab restarted there); server certificates are cheap (ECDSA
P-256) and made for each cluster, with the endpoint addresses clients use as subject alternative names
(``127.0.0.1`` and ``localhost``: ``Endpoint.Address`` is ``127.0.0.1``), so ``sslmode=verify-full`` works.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ENDPOINT_NAMES = ("127.0.0.1", "localhost")
_VALID_DAYS = 3650
_ca_lock = threading.Lock()


def ca_paths(root: Path) -> tuple[Path, Path]:
    directory = Path(root) / "tls"
    return directory / "ca.crt", directory / "ca.key"


def lab_ca(root: Path) -> Path:
    """The CA certificate of the lab whose state directory is root, created on first use."""
    cert_path, key_path = ca_paths(root)
    with _ca_lock:
        if cert_path.exists() and key_path.exists():
            return cert_path
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(cert_path.parent, 0o755)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "dbre.rds lab"),
                          x509.NameAttribute(NameOID.COMMON_NAME, f"dbre.rds lab CA {os.getpid()}")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
                .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                             content_commitment=False, key_encipherment=False,
                                             data_encipherment=False, key_agreement=False, encipher_only=False,
                                             decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .sign(key, hashes.SHA256()))
        _write(key_path, _key_pem(key), 0o600)
        _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        return cert_path


def issue_server_certificate(root: Path, cert_path: Path, key_path: Path, common_name: str,
                             names=ENDPOINT_NAMES, owner: tuple[int, int] | None = None) -> None:
    """A server certificate signed by the lab CA, valid for names (IP addresses or DNS names)."""
    ca_cert_path, ca_key_path = ca_paths(root)
    lab_ca(root)
    ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
    ca_key = serialization.load_pem_private_key(ca_key_path.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    alternative = []
    for name in names:
        try:
            alternative.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alternative.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=_VALID_DAYS))
            .add_extension(x509.SubjectAlternativeName(alternative), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    # PostgreSQL refuses a key file that others can read, and it must belong to the server's OS user.
    _write(key_path, _key_pem(key), 0o600, owner)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644, owner)


def _key_pem(key) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _write(path: Path, data: bytes, mode: int, owner: tuple[int, int] | None = None) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    if owner:
        os.chown(tmp, *owner)
    os.replace(tmp, path)
