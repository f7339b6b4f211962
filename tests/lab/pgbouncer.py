# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The real pooler behind each lab RDS Proxy: one PgBouncer 1.18 per proxy, and the lab's front that speaks for it.

An RDS Proxy endpoint is a host name on the engine's port (5432 for POSTGRESQL; the API has no port field). The lab
gives each proxy endpoint its own loopback address (``127.X.Y.Z``, picked at random and free on port 5432) and listens
there with a small front written here (asyncio, in the lab's process), which does what the proxy does before a client
reaches the pool:

- TLS: answers the PostgreSQL SSLRequest with a server certificate of the lab CA naming the endpoint's addresses
  (``sslmode=verify-full`` with ``LAB_CA_CERT`` works); with ``RequireTLS`` a client without TLS is refused with
  "This RDS Proxy requires TLS connections".
- authentication: asks for the password (cleartext, inside TLS when the client chose TLS) and hands it to the proxy's
  ``authenticate(user, password, address)`` (``fidelity/db_proxy.py``: the proxy's Secrets Manager secrets, or an RDS
  IAM auth token checked by ``verify_iam_token`` below). A refusal is a FATAL 28P01 ErrorResponse.
- then it connects to the proxy's PgBouncer over a unix socket only root and the postgres OS user can reach and
  relays bytes both ways; PgBouncer (``auth_type trust`` on that socket, the user's password from the secret in its
  ``auth_file``) logs in to the target's PostgreSQL over its unix socket (not the instance's TCP endpoint, which
  refuses logins for ``dns_propagation`` after a failover while the proxy already reaches the new writer; so no TLS
  on that hop) and pools: ``pool_mode transaction``, ``default_pool_size`` and ``max_db_connections`` =
  MaxConnectionsPercent of the target's max_connections, ``query_wait_timeout`` = ConnectionBorrowTimeout,
  ``connect_query`` = InitQuery, ``client_idle_timeout`` = IdleClientTimeout.

PgBouncer runs as the ``postgres`` OS user (as the lab's PostgreSQL does), daemonized, with its files in
``<root>/proxies/<name>-<n>/`` (``pgbouncer.ini``, ``userlist.txt`` (0600), ``pgbouncer.log``, ``pgbouncer.pid``) and
its unix socket there too, or, when that path is too long for a socket, in ``/tmp/lab-pgb-<state dir>-*`` (named in
``socket_dir``). ``stop_all(root)`` stops every PgBouncer of a state
directory through those pid files, so it works after the lab process died.
"""

from __future__ import annotations

import asyncio
import hmac
import itertools
import logging
import os
import random
import shutil
import signal
import ssl
import struct
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

from tests.lab import postgres
from tests.lab.tls import issue_server_certificate

LOG = logging.getLogger("tests.lab")

PGBOUNCER = Path(os.environ.get("LAB_PGBOUNCER", "/usr/sbin/pgbouncer"))
PROXY_PORT = 5432            # POSTGRESQL proxies listen on the engine's default port, as on AWS
ADMIN_USER = "lab_pgbouncer"
SOCKET_PORT = 6432           # only names PgBouncer's unix socket (.s.PGSQL.6432); it listens on no TCP port
SERVER_LOGIN_RETRY = 0.25    # seconds between PgBouncer's attempts to log in to a target that is down

SSL_REQUEST, GSSENC_REQUEST, CANCEL_REQUEST, PROTOCOL_3 = 80877103, 80877104, 80877102, 196608
_NAMES = itertools.count(1)
_LIVE: set = set()           # Poolers of this process (their fronts live in this process's asyncio loop)


class AuthFailed(Exception):
    """A client the proxy refuses; the message is what the client reads."""


# ------------------------------------------------------------------------------------------------- IAM auth tokens

def verify_iam_token(token: str, user: str, host: str, port: int, secret_for_key, region: str = "us-east-1",
                     now: datetime | None = None) -> None:
    """Check an RDS IAM auth token (``rds.generate_db_auth_token``) as RDS does; raise AuthFailed saying what is wrong.

    Checked: it is a presigned ``Action=connect`` request for this ``host:port`` and ``DBUser`` ``user``; algorithm
    AWS4-HMAC-SHA256; credential scope ``<date>/<region>/rds-db/aws4_request``; signed at most 15 minutes ago and not in
    the future, within its X-Amz-Expires (at most 900 s); and its SigV4 signature recomputed with the secret key the lab
    knows for its access key id (``secret_for_key(key_id)``, None when unknown) matches.
    """
    from botocore.auth import SigV4QueryAuth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    if "X-Amz-Signature=" not in (token or ""):
        raise AuthFailed("PAM authentication failed for user \"%s\": this proxy requires IAM authentication "
                         "(an RDS IAM auth token as the password)" % user)
    split = urlsplit("https://" + (token or ""))
    params = dict(parse_qsl(split.query, keep_blank_values=True))
    if split.netloc != f"{host}:{port}" or split.path not in ("", "/"):
        raise AuthFailed("PAM authentication failed for user \"%s\": the IAM token was made for %s, not this "
                         "endpoint (%s:%s)" % (user, split.netloc or "nothing", host, port))
    if params.get("Action") != "connect" or params.get("DBUser") != user:
        raise AuthFailed("PAM authentication failed for user \"%s\": the IAM token is not a connect token for this "
                         "user" % user)
    if params.get("X-Amz-Algorithm") != "AWS4-HMAC-SHA256" or "X-Amz-Signature" not in params:
        raise AuthFailed("PAM authentication failed for user \"%s\": not an IAM auth token" % user)
    try:
        key_id, date, scope_region, service, terminator = params["X-Amz-Credential"].split("/")
        signed_at = datetime.strptime(params["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=timezone.utc)
        expires = int(params.get("X-Amz-Expires", "900"))
    except (KeyError, ValueError):
        raise AuthFailed("PAM authentication failed for user \"%s\": malformed IAM auth token" % user) from None
    if (scope_region, service, terminator) != (region, "rds-db", "aws4_request") or date != params["X-Amz-Date"][:8]:
        raise AuthFailed("PAM authentication failed for user \"%s\": the IAM token's scope is not %s/rds-db"
                         % (user, region))
    now = now or datetime.now(timezone.utc)
    if signed_at > now + timedelta(minutes=5):
        raise AuthFailed("PAM authentication failed for user \"%s\": the IAM token is dated in the future" % user)
    if now > signed_at + timedelta(seconds=min(expires, 900)):
        raise AuthFailed("PAM authentication failed for user \"%s\": the IAM token has expired" % user)
    secret = secret_for_key(key_id)
    if secret is None:
        raise AuthFailed("PAM authentication failed for user \"%s\": unknown access key in the IAM token" % user)
    unsigned = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in params.items()
                        if k != "X-Amz-Signature")
    request = AWSRequest(method="GET", url=f"https://{host}:{port}/?{unsigned}")
    request.context["timestamp"] = params["X-Amz-Date"]
    signer = SigV4QueryAuth(Credentials(key_id, secret, params.get("X-Amz-Security-Token")), "rds-db", region,
                            expires=expires)
    canonical = signer.canonical_request(request)
    expected = signer.signature(signer.string_to_sign(request, canonical), request)
    if not hmac.compare_digest(expected, params["X-Amz-Signature"]):
        raise AuthFailed("PAM authentication failed for user \"%s\": the IAM token's signature does not match"
                         % user)


# ------------------------------------------------------------------------------------------------- the front (asyncio)

class _Loop:
    """One asyncio loop thread per process serving every proxy endpoint's front."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def get(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="lab-proxy-front", daemon=True).start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro, timeout: float = 30):
        return asyncio.run_coroutine_threadsafe(coro, cls.get()).result(timeout)


def _message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def _error(code: str, message: str) -> bytes:
    pairs = ((b"S", "FATAL"), (b"V", "FATAL"), (b"C", code), (b"M", message))
    fields = b"".join(k + v.encode() + b"\0" for k, v in pairs)
    return _message(b"E", fields + b"\0")


async def _read_startup(reader) -> bytes:
    length = struct.unpack("!I", await reader.readexactly(4))[0]
    if not 8 <= length <= 10000:
        raise ValueError("bad startup packet length")
    return await reader.readexactly(length - 4)


async def _pipe(reader, writer) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError, asyncio.IncompleteReadError, ssl.SSLError):
        pass


def _close(writer) -> None:
    try:
        writer.close()
    except Exception:  # pylint: disable=broad-except  # already gone
        pass


async def _serve(pooler: "Pooler", address: str, reader, writer) -> None:
    upstream = None
    try:
        tls = False
        while True:
            body = await _read_startup(reader)
            code = struct.unpack("!I", body[:4])[0]
            if code == SSL_REQUEST and not tls:
                writer.write(b"S")
                await writer.drain()
                await writer.start_tls(pooler.ssl_context)
                tls = True
                continue
            if code == GSSENC_REQUEST:
                writer.write(b"N")
                await writer.drain()
                continue
            if code == CANCEL_REQUEST:
                up_reader, up_writer = await asyncio.open_unix_connection(pooler.socket_path)
                up_writer.write(struct.pack("!I", len(body) + 4) + body)
                await up_writer.drain()
                _close(up_writer)
                return
            break
        if code != PROTOCOL_3:
            writer.write(_error("08P01", "unsupported frontend protocol"))
            return
        items = body[4:].split(b"\0")
        params = {items[i].decode(): items[i + 1].decode() for i in range(0, len(items) - 1, 2) if items[i]}
        user = params.get("user", "")
        if pooler.require_tls and not tls:
            writer.write(_error("28000", "This RDS Proxy requires TLS connections"))
            return
        writer.write(_message(b"R", struct.pack("!I", 3)))  # AuthenticationCleartextPassword
        await writer.drain()
        kind = await reader.readexactly(1)
        length = struct.unpack("!I", await reader.readexactly(4))[0]
        password = (await reader.readexactly(length - 4)).rstrip(b"\0").decode("utf-8", "replace")
        if kind != b"p":
            writer.write(_error("08P01", "expected a password message"))
            return
        try:
            server_password = await asyncio.get_running_loop().run_in_executor(
                None, pooler.authenticate, user, password, address)
        except AuthFailed as exc:
            writer.write(_error("28P01", str(exc)))
            return
        if server_password is not None:
            await asyncio.get_running_loop().run_in_executor(None, pooler.ensure_user, user, server_password)
        up_reader, upstream = await asyncio.open_unix_connection(pooler.socket_path)
        startup = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params.items()) + b"\0"
        upstream.write(struct.pack("!II", len(startup) + 8, PROTOCOL_3) + startup)
        await upstream.drain()
        pumps = [asyncio.ensure_future(_pipe(reader, upstream)), asyncio.ensure_future(_pipe(up_reader, writer))]
        await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        for pump in pumps:
            pump.cancel()
    except (ConnectionError, OSError, ValueError, asyncio.IncompleteReadError, ssl.SSLError):
        pass
    except Exception:  # pylint: disable=broad-except  # one client's failure must not stop the front
        LOG.exception("proxy %s: client connection failed", pooler.name)
    finally:
        try:
            await writer.drain()
        except Exception:  # pylint: disable=broad-except
            pass
        _close(writer)
        if upstream is not None:
            _close(upstream)


# ------------------------------------------------------------------------------------------------- one proxy

class Pooler:
    """PgBouncer and the front of one proxy. ``authenticate(user, password, address)`` returns the password PgBouncer
    logs in to the target with (from the user's secret) or raises AuthFailed."""

    def __init__(self, root: Path, name: str, authenticate, require_tls: bool = True):
        self.root = Path(root)
        self.name = name
        self.authenticate = authenticate
        self.require_tls = require_tls
        self.directory = self.root / "proxies" / f"{name}-{next(_NAMES)}"
        if len(str(self.directory)) <= 90:  # a unix socket path has at most 107 bytes
            self.socket_dir = self.directory
        else:
            self.socket_dir = Path(tempfile.mkdtemp(prefix=f"lab-pgb-{self.root.name[-12:]}-", dir="/tmp"))
        self.socket_path = str(self.socket_dir / f".s.PGSQL.{SOCKET_PORT}")
        self.users: dict[str, str] = {}
        self.settings: dict = {}
        self.listeners: dict[str, asyncio.AbstractServer] = {}
        self.ssl_context: ssl.SSLContext | None = None
        self.lock = threading.RLock()
        self._started = False

    # --- files -------------------------------------------------------------------------------------------------
    def _ini(self) -> str:
        s = self.settings
        target = s.get("target")
        databases = f"* = host={target[0]} port={target[1]}\n" if target else ""
        lines = {
            "listen_addr": "",
            "listen_port": SOCKET_PORT,
            "unix_socket_dir": self.socket_dir,
            "unix_socket_mode": "0700",
            "auth_type": "trust",
            "auth_file": self.directory / "userlist.txt",
            "admin_users": ADMIN_USER,
            "pool_mode": "transaction",
            "default_pool_size": s.get("pool_size", 1),
            "max_db_connections": s.get("pool_size", 1),
            "min_pool_size": 0,
            "reserve_pool_size": 0,
            "max_client_conn": 2000,
            # ConnectionBorrowTimeout 0 means no waiting on AWS; PgBouncer's 0 would mean waiting for ever.
            "query_wait_timeout": s.get("borrow_timeout", 120) or 0.001,
            "client_idle_timeout": s.get("idle_client_timeout", 1800),
            "server_login_retry": SERVER_LOGIN_RETRY,
            "server_connect_timeout": 2,
            "server_tls_sslmode": "require",
            "ignore_startup_parameters": "extra_float_digits,options",
            "logfile": self.directory / "pgbouncer.log",
            "pidfile": self.directory / "pgbouncer.pid",
            "verbose": 1 if s.get("debug_logging") else 0,
        }
        if s.get("init_query"):
            lines["connect_query"] = "'" + str(s["init_query"]).replace("'", "''") + "'"
        return ("[databases]\n" + databases + "\n[pgbouncer]\n"
                + "".join(f"{key} = {value}\n" for key, value in lines.items()))

    def _write(self, name: str, text: str, mode: int) -> None:
        path = self.directory / name
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        if postgres.AS_ROOT:
            os.chown(tmp, *postgres._pg_ids())
        os.replace(tmp, path)

    def _write_users(self) -> None:
        users = dict(self.users, **{ADMIN_USER: ""})
        self._write("userlist.txt", "".join('"%s" "%s"\n' % (user.replace('"', '""'), password.replace('"', '""'))
                                            for user, password in sorted(users.items())), 0o600)

    # --- lifecycle ---------------------------------------------------------------------------------------------
    def start(self, settings: dict) -> None:
        with self.lock:
            self.settings = dict(settings)
            postgres._make_pg_dir(self.directory, 0o700)
            postgres._make_pg_dir(self.socket_dir, 0o700)
            postgres._ensure_traversable(self.directory)
            (self.directory / "socket_dir").write_text(str(self.socket_dir))
            self._write_users()
            self._write("pgbouncer.ini", self._ini(), 0o600)
            postgres._run([PGBOUNCER, "-d", "-q", self.directory / "pgbouncer.ini"], timeout=30)
            deadline = time.monotonic() + 10
            while not os.path.exists(self.socket_path):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"pgbouncer of proxy {self.name} did not start: {self.log_tail()}")
                time.sleep(0.02)
            self._started = True
            _LIVE.add(self)

    def configure(self, settings: dict) -> None:
        """New pool settings (target, pool size, timeouts, init query): rewrite the ini and RELOAD."""
        with self.lock:
            self.settings = dict(settings)
            self._write("pgbouncer.ini", self._ini(), 0o600)
            if self._started:
                self.admin("RELOAD")

    def ensure_user(self, user: str, password: str) -> None:
        """The login PgBouncer uses for ``user`` (the secret's password), RELOADed when new or changed."""
        with self.lock:
            if self.users.get(user) == password:
                return
            self.users[user] = password
            self._write_users()
            if self._started:
                self.admin("RELOAD")

    def admin(self, command: str, timeout: float = 10.0) -> list:
        """Run a PgBouncer console command (RELOAD, PAUSE, RESUME, SHOW POOLS...) and return its rows."""
        import psycopg2
        conn = psycopg2.connect(host=str(self.socket_dir), port=SOCKET_PORT, dbname="pgbouncer", user=ADMIN_USER,
                                connect_timeout=max(1, int(timeout)))
        try:
            conn.autocommit = True
            with conn.cursor() as cursor:
                cursor.execute(command)
                if cursor.description is None:
                    return []
                columns = [c.name for c in cursor.description]
                return [dict(zip(columns, row)) for row in cursor.fetchall()]
        finally:
            conn.close()

    def pause(self, timeout: float = 1.0) -> bool:
        """PAUSE (clients wait instead of failing); True when every server connection was released in time."""
        done = threading.Event()

        def run():
            try:
                self.admin("PAUSE", timeout=30)
                done.set()
            except Exception:  # pylint: disable=broad-except  # a RESUME ends a PAUSE still waiting
                pass

        threading.Thread(target=run, name=f"lab-pause-{self.name}", daemon=True).start()
        return done.wait(timeout)

    def resume(self) -> None:
        try:
            self.admin("RESUME")
        except Exception as exc:  # pylint: disable=broad-except  # not paused (a PAUSE that had not begun)
            if "not paused" not in str(exc).lower():
                raise

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join((self.directory / "pgbouncer.log").read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    # --- endpoints ---------------------------------------------------------------------------------------------
    def _certificate(self) -> None:
        addresses = sorted(self.listeners)
        cert, key = self.directory / "server.crt", self.directory / "server.key"
        issue_server_certificate(self.root, cert, key, f"proxy {self.name}", names=addresses or ["127.0.0.1"])
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(str(cert), str(key))
        self.ssl_context = context

    def add_endpoint(self) -> str:
        """Listen on a new loopback address, port 5432; returns the address (the endpoint's Endpoint)."""
        with self.lock:
            for unused in range(200):
                address = f"127.{random.randint(64, 254)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
                try:
                    server = _Loop.run(asyncio.start_server(
                        lambda r, w, a=address: _serve(self, a, r, w), address, PROXY_PORT, reuse_address=True))
                except OSError:
                    continue
                self.listeners[address] = server
                self._certificate()
                return address
            raise RuntimeError("no free loopback address for a proxy endpoint")

    def remove_endpoint(self, address: str) -> None:
        with self.lock:
            server = self.listeners.pop(address, None)
            if server is not None:
                server.close()
                _Loop.run(server.wait_closed(), timeout=5)

    def stop(self) -> None:
        with self.lock:
            for address in list(self.listeners):
                try:
                    self.remove_endpoint(address)
                except Exception:  # pylint: disable=broad-except  # best effort: the loop may be gone
                    LOG.exception("closing %s of proxy %s failed", address, self.name)
            _stop_directory(self.directory)
            if self.socket_dir != self.directory:
                shutil.rmtree(self.socket_dir, ignore_errors=True)
            self._started = False
            _LIVE.discard(self)


def _pid_of(directory: Path) -> int | None:
    try:
        pid = int((directory / "pgbouncer.pid").read_text().strip())
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            return pid if b"pgbouncer" in cmdline.read() else None
    except (OSError, ValueError):
        return None


def _stop_directory(directory: Path, timeout: float = 5.0) -> None:
    pid = _pid_of(directory)
    if pid is not None:
        try:
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while _pid_of(directory) == pid and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_of(directory) == pid:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        socket_dir = Path((directory / "socket_dir").read_text().strip())
        if socket_dir != directory and socket_dir.parent == Path("/tmp") and socket_dir.name.startswith("lab-pgb-"):
            shutil.rmtree(socket_dir, ignore_errors=True)
    except OSError:
        pass


def stop_all(root: Path) -> None:
    """Stop every PgBouncer of the lab whose state directory is root (also after the lab process died)."""
    for pooler in list(_LIVE):
        if pooler.root.resolve() == Path(root).resolve():
            pooler.stop()
    proxies = Path(root) / "proxies"
    if not proxies.is_dir():
        return
    for directory in proxies.iterdir():
        if directory.is_dir():
            _stop_directory(directory)
