# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""tests/tools/iam_policies.py: call log entries to policy documents."""

import json

import pytest

from tests.tools.iam_policies import actions_by_subject, attribution, iam_action, main, policy_actions, policy_document

# As amazon.aws 10 sends them: its own user agent, then the collection's module tag from aws_clients.py.
UA_MODULE = "APN/1.0 Ansible/2.19.14 amazon.aws/10.1.2 Botocore/1.44.8 dbre.rds/rds_param_tune"
UA_AMAZON = "APN/1.0 Ansible/2.19.14 amazon.aws/10.1.2 Botocore/1.44.8"
# Task windows as task_windows() makes them: only dbre.rds's roles and playbooks/ (the demo's fixtures have none).
WINDOWS = [{"subject": "rds_provision", "start": 10, "end": 19}, {"subject": "rds_monitoring", "start": 20, "end": 29}]


def call(service, action, user_agent, epoch=15):
    return {"service": service, "action": action, "user_agent": user_agent, "epoch": epoch}


@pytest.mark.parametrize("user_agent, epoch, subjects", [
    (UA_MODULE, 15, ["rds_param_tune", "rds_provision"]),
    (UA_MODULE, 35, ["rds_param_tune"]),
    (UA_AMAZON, 25, ["rds_monitoring"]),
    (UA_AMAZON, 35, []),
])
def test_attribution(user_agent, epoch, subjects):
    assert attribution(call("rds", "DescribeDBInstances", user_agent, epoch), WINDOWS) == subjects


@pytest.mark.parametrize("service, action, expected", [
    ("rds", "DescribeDBInstances", "rds:DescribeDBInstances"),
    ("monitoring", "PutMetricAlarm", "cloudwatch:PutMetricAlarm"),
    ("secretsmanager", "GetSecretValue", "secretsmanager:GetSecretValue"),
])
def test_iam_action(service, action, expected):
    assert iam_action(call(service, action, UA_MODULE)) == expected


def rest_call(service, action, query=(), headers=()):
    return dict(call(service, action, UA_MODULE), protocol="rest",
                params={"query_keys": list(query), "header_keys": list(headers)})


@pytest.mark.parametrize("action, query, headers, expected", [
    ("GET /bucket", (), (), "s3:ListBucket"),
    ("GET /bucket", ("list-type", "prefix"), (), "s3:ListBucket"),
    ("HEAD /bucket/fleet/report.json", (), (), "s3:GetObject"),
    ("GET /bucket", ("ownershipControls",), (), "s3:GetBucketOwnershipControls"),
    ("PUT /bucket/fleet/report.json", (), ("x-amz-content-sha256",), "s3:PutObject"),
    ("PUT /bucket/fleet/report.json", (), ("x-amz-copy-source",), "s3:PutObject"),
    ("PUT /bucket/fleet/report.json", ("acl",), (), "s3:PutObjectAcl"),
    ("DELETE /bucket/fleet/report.json", (), (), "s3:DeleteObject"),
    ("DELETE /bucket/fleet/report.json", ("uploadId",), (), "s3:AbortMultipartUpload"),
])
def test_s3_calls_are_named_by_their_query_names_and_required_headers_as_iam_names_them(action, query, headers, expected):
    assert iam_action(rest_call("s3", action, query, headers)) == expected


def test_rest_calls_are_refused_rather_than_guessed():
    with pytest.raises(ValueError, match="REST"):
        iam_action(rest_call("s3", "PATCH /bucket"))
    with pytest.raises(ValueError, match="could be any of GetBucketLifecycle, GetBucketLifecycleConfiguration"):
        iam_action(rest_call("s3", "GET /bucket", ("lifecycle",)))


@pytest.mark.parametrize("action, expected", [
    ("GET /2013-04-01/hostedzone/Z0123", "route53:GetHostedZone"),
    ("POST /2013-04-01/hostedzone/Z0123/rrset/", "route53:ChangeResourceRecordSets"),
    ("POST /2013-04-01/hostedzone/Z0123/rrset", "route53:ChangeResourceRecordSets"),
    ("GET /2013-04-01/hostedzone/Z0123/rrset", "route53:ListResourceRecordSets"),
    ("GET /2013-04-01/change/C0123", "route53:GetChange"),
])
def test_rest_calls_are_named_by_the_one_operation_of_botocore_s_model_that_matches(action, expected):
    assert iam_action(dict(call("route53", action, UA_MODULE), protocol="rest")) == expected


def test_actions_by_subject_counts_a_module_call_for_its_role_and_leaves_fixtures_to_no_one():
    calls = [
        call("rds", "ModifyDBParameterGroup", UA_MODULE, 12),
        call("monitoring", "PutMetricAlarm", UA_AMAZON, 22),
        call("ec2", "CreateVpc", UA_AMAZON, 2),
        call("sts", "GetCallerIdentity", UA_AMAZON, 40),
    ]
    # CreateVpc (a fixture's playbook, outside any window) and GetCallerIdentity (after the last task) are no one's.
    assert actions_by_subject(calls, WINDOWS) == {"rds_param_tune": {"rds:ModifyDBParameterGroup"},
                                                  "rds_provision": {"rds:ModifyDBParameterGroup"},
                                                  "rds_monitoring": {"cloudwatch:PutMetricAlarm"}}


def test_policy_document_has_one_sorted_statement_per_service():
    document = policy_document({"rds:ModifyDBParameterGroup", "rds:DescribeDBInstances", "cloudwatch:PutMetricAlarm"})
    assert document == {"Version": "2012-10-17", "Statement": [
        {"Sid": "Cloudwatch", "Effect": "Allow", "Action": ["cloudwatch:PutMetricAlarm"], "Resource": "*"},
        {"Sid": "Rds", "Effect": "Allow", "Action": ["rds:DescribeDBInstances", "rds:ModifyDBParameterGroup"],
         "Resource": "*"},
    ]}
    assert policy_actions(document) == {"rds:ModifyDBParameterGroup", "rds:DescribeDBInstances",
                                        "cloudwatch:PutMetricAlarm"}


def test_add_unions_a_partial_run_into_the_policies_and_removes_nothing(tmp_path):
    iam = tmp_path / "iam"
    iam.mkdir()
    (iam / "rds_provision.json").write_text(json.dumps(policy_document({"rds:CreateDBInstance"})))
    (iam / "rds_users.json").write_text(json.dumps(policy_document({"rds:DescribeDBInstances"})))
    worker = tmp_path / "run" / "gw0"
    worker.mkdir(parents=True)
    (worker / "attributed.tsv").write_text("rds_provision\trds:CreateGlobalCluster\n"
                                           "rds_dr_drill\trds:PromoteReadReplica\n")

    assert main(["--run-dir", str(tmp_path / "run"), "--iam-dir", str(iam), "--add"]) == 0

    def actions(subject):
        return policy_actions(json.loads((iam / f"{subject}.json").read_text()))
    assert actions("rds_provision") == {"rds:CreateDBInstance", "rds:CreateGlobalCluster"}
    assert actions("rds_dr_drill") == {"rds:PromoteReadReplica"}
    assert actions("rds_users") == {"rds:DescribeDBInstances"}
