# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""TLS: every lab PostgreSQL serves TLS with a certificate of the lab CA (``LabControl.ca_cert()``, ``LAB_CA_CERT``)
valid for the endpoint address, so ``sslmode=verify-full`` connects, as with RDS and its CA bundle."""

import datetime

import psycopg2
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.lab.clients import MASTER_PASSWORD, MASTER_USER, create_postgres, wait_cluster

pytestmark = pytest.mark.lab


def _connect(address: str, port: int, **ssl):
    conn = psycopg2.connect(host=address, port=port, user=MASTER_USER, password=MASTER_PASSWORD, dbname="postgres",
                            connect_timeout=5, **ssl)
    conn.autocommit = True
    return conn


def _uses_tls(conn) -> bool:
    with conn.cursor() as cur:
        cur.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        return cur.fetchone()[0]


def _other_ca(path) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "not the lab CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return str(path)


def test_verify_full_with_the_lab_ca(lab_clean, tmp_path):
    rds, control = lab_clean.client(), lab_clean.control
    ca_cert = control.ca_cert()
    assert lab_clean.env["LAB_CA_CERT"] == ca_cert
    assert open(ca_cert).read().startswith("-----BEGIN CERTIFICATE-----")
    instance = create_postgres(rds, "secure")
    address, port = instance["Endpoint"]["Address"], instance["Endpoint"]["Port"]

    conn = _connect(address, port, sslmode="verify-full", sslrootcert=ca_cert)
    assert _uses_tls(conn)
    conn.close()
    conn = _connect("localhost", port, sslmode="verify-full", sslrootcert=ca_cert)
    conn.close()
    conn = _connect(address, port)  # libpq's default sslmode=prefer
    assert _uses_tls(conn)
    conn.close()
    with pytest.raises(psycopg2.OperationalError, match="certificate verify failed"):
        _connect(address, port, sslmode="verify-full", sslrootcert=_other_ca(tmp_path / "other.crt"))


def test_aurora_cluster_endpoints_verify_full(lab_clean):
    rds, control = lab_clean.client(), lab_clean.control
    rds.create_db_cluster(DBClusterIdentifier="secure-aurora", Engine="aurora-postgresql",
                          MasterUsername=MASTER_USER, MasterUserPassword=MASTER_PASSWORD)
    cluster = wait_cluster(rds, "secure-aurora")
    for address in (cluster["Endpoint"], cluster["ReaderEndpoint"]):
        conn = _connect(address, cluster["Port"], sslmode="verify-full", sslrootcert=control.ca_cert())
        assert _uses_tls(conn)
        conn.close()
