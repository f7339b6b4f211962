# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host to connect to.
      - Defaults to the endpoint address that RDS describes for the instance or cluster being worked on.
    type: str
  login_port:
    description:
      - Port to connect to. Defaults to the endpoint port that RDS describes.
    type: int
  login_user:
    description:
      - PostgreSQL user to connect as, for example the master user.
    type: str
  login_password:
    description:
      - Password of O(login_user). Mutually exclusive with O(iam_auth=true).
    type: str
  login_db:
    description:
      - Database to connect to.
    type: str
    default: postgres
  ssl_mode:
    description:
      - libpq C(sslmode). With O(iam_auth=true) the modes that allow plain text are raised to V(require), since RDS
        accepts IAM tokens over TLS only.
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - Path of the CA bundle (the RDS global bundle) used to verify the server with O(ssl_mode=verify-ca) or
        O(ssl_mode=verify-full).
    type: str
    aliases: [ssl_rootcert]
  connect_timeout:
    description:
      - Seconds libpq waits for a connection before giving up.
    type: int
    default: 5
  iam_auth:
    description:
      - Authenticate with an RDS IAM authentication token generated with C(generate_db_auth_token) for
        O(login_user) instead of a password. The login must be a member of C(rds_iam).
      - The token is renewed during long drills and never returned or logged.
    type: bool
    default: false
"""
