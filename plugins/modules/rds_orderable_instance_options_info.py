#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rds_orderable_instance_options_info
short_description: List the DB instance classes RDS offers for an engine and engine version
version_added: "0.2.0"
description:
  - Reads C(DescribeOrderableDBInstanceOptions) for one engine, and optionally one engine version, DB instance class
    or VPC setting, every page of it.
  - Used by the R(dbre.rds.rds_provision,ansible_collections.dbre.rds.rds_provision_role) role to refuse, before
    anything is created, an instance class the engine version is not offered in.
author:
  - dbre.rds maintainers (@dbre-rds)
options:
  engine:
    description:
      - The engine, for example V(postgres) or V(aurora-postgresql).
    type: str
    required: true
  engine_version:
    description:
      - Only the options of this engine version.
    type: str
  db_instance_class:
    description:
      - Only the options of this DB instance class.
    type: str
  vpc:
    description:
      - Only the options for a VPC (V(true)) or outside one (V(false)).
    type: bool
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - "IAM actions: C(rds:DescribeOrderableDBInstanceOptions)."
seealso:
  - module: amazon.aws.rds_engine_versions_info
  - module: amazon.aws.rds_instance
"""

EXAMPLES = r"""
- name: List the classes RDS offers for PostgreSQL 15.7
  dbre.rds.rds_orderable_instance_options_info:
    engine: postgres
    engine_version: "15.7"
  register: offered

- name: Show the classes
  ansible.builtin.debug:
    msg: "{{ offered.orderable_db_instance_options | map(attribute='db_instance_class') | unique }}"

- name: Check that db.r6g.large is offered for Aurora PostgreSQL 15.4
  dbre.rds.rds_orderable_instance_options_info:
    engine: aurora-postgresql
    engine_version: "15.4"
    db_instance_class: db.r6g.large
  register: aurora_large
  failed_when: aurora_large.orderable_db_instance_options | length == 0
"""

RETURN = r"""
orderable_db_instance_options:
  description:
    - The C(OrderableDBInstanceOptions) items, in snake_case, one per class, version, storage type and option
      combination.
  returned: always
  type: list
  elements: dict
  sample:
    - engine: postgres
      engine_version: "15.7"
      db_instance_class: db.r6g.large
      storage_type: gp3
      multi_az_capable: true
      availability_zones: [{name: us-east-1a}]
"""

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports missing botocore

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.dbre.rds.plugins.module_utils.aws_clients import rds_client
from ansible_collections.dbre.rds.plugins.module_utils.rds_resources import paginate


def main():
    argument_spec = dict(
        engine=dict(type="str", required=True),
        engine_version=dict(type="str"),
        db_instance_class=dict(type="str"),
        vpc=dict(type="bool"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    request = {"Engine": params["engine"], "MaxRecords": 1000}
    for option, key in (("engine_version", "EngineVersion"), ("db_instance_class", "DBInstanceClass"),
                        ("vpc", "Vpc")):
        if params[option] is not None:
            request[key] = params[option]
    try:
        options = paginate(rds_client(module), "describe_orderable_db_instance_options",
                           "OrderableDBInstanceOptions", **request)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as e:
        module.fail_json_aws(e, msg=f"Reading the instance options RDS offers for {params['engine']}: check the "
                                    "engine name and the caller's rds:DescribeOrderableDBInstanceOptions permission")
    module.exit_json(changed=False, orderable_db_instance_options=[camel_dict_to_snake_dict(o) for o in options])


if __name__ == "__main__":
    main()
