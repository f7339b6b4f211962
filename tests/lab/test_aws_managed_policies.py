# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""AWS managed IAM policies exist, so a role attaches AmazonRDSEnhancedMonitoringRole as on AWS."""

import json

import pytest

pytestmark = pytest.mark.lab

MONITORING_POLICY = "arn:aws:iam::aws:policy/service-role/AmazonRDSEnhancedMonitoringRole"


def test_enhanced_monitoring_role_policy_attaches(lab_clean):
    iam = lab_clean.client("iam")
    policy = iam.get_policy(PolicyArn=MONITORING_POLICY)["Policy"]
    assert policy["PolicyName"] == "AmazonRDSEnhancedMonitoringRole"
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                     "Principal": {"Service": "monitoring.rds.amazonaws.com"}}]}
    iam.create_role(RoleName="lab-rds-monitoring", AssumeRolePolicyDocument=json.dumps(trust))
    try:
        iam.attach_role_policy(RoleName="lab-rds-monitoring", PolicyArn=MONITORING_POLICY)
        attached = iam.list_attached_role_policies(RoleName="lab-rds-monitoring")["AttachedPolicies"]
        assert [p["PolicyArn"] for p in attached] == [MONITORING_POLICY]
    finally:
        for attached in iam.list_attached_role_policies(RoleName="lab-rds-monitoring")["AttachedPolicies"]:
            iam.detach_role_policy(RoleName="lab-rds-monitoring", PolicyArn=attached["PolicyArn"])
        iam.delete_role(RoleName="lab-rds-monitoring")
