# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""dbre.rds.rds_dr_drill refuses bad inputs before its first mutating call, naming the problem and the fix.

Every case runs as a task of one playbook (tests/integration/bad_inputs.py) against a lab holding an instance
``orders`` (us-east-1) with its cross-region read replica ``orders-dr`` (us-west-2), an Aurora cluster ``pay-east``
that is the only member of the global database ``pay-solo``, a CloudWatch alarm in ALARM and the hosted zone
``example.internal``. For each case the error must name the problem, the lab's call log must show only reads, and
the lab must hold exactly what it held before.
"""

import time

import pytest

from tests.integration.bad_inputs import assert_all_refused
from tests.integration.bad_inputs import run_module_cases

MODULE = "dbre.rds.rds_dr_drill"
PASSWORD = "bad-Input-Dr-9"
ACCOUNT = "123456789012"


def cases(zone_id):
    def rehearsal(**args):
        return dict({"db_instance_identifier": "orders", "dr_region": "us-west-2", "poll_interval": 0.2}, **args)

    def failover(**args):
        return dict({"mode": "failover", "db_instance_identifier": "orders", "dr_instance_identifier": "orders-dr",
                     "dr_region": "us-west-2", "poll_interval": 0.2, "max_lag_seconds": 3600}, **args)

    def switchover(**args):
        return dict({"mode": "switchover", "global_cluster_identifier": "pay-solo", "poll_interval": 0.2}, **args)

    return [
        # unknown identifiers
        {"id": "no_such_primary", "args": rehearsal(db_instance_identifier="ordrs"),
         "expect": ["no DB instance 'ordrs' exists in us-east-1"]},
        {"id": "no_such_global", "args": switchover(global_cluster_identifier="pay-nowhere"),
         "expect": ["no global cluster 'pay-nowhere' exists"]},
        # a same-region "DR" target
        {"id": "dr_region_is_primary_region", "args": rehearsal(dr_region="us-east-1"),
         "expect": ["dr_region us-east-1 is the primary's region", "does not survive a regional outage"]},
        # a mode the topology cannot do
        {"id": "switchover_of_an_instance", "args": {"mode": "switchover", "db_instance_identifier": "orders"},
         "expect": ["mode=switchover needs global_cluster_identifier", "exists for Aurora Global Database only"]},
        {"id": "switchover_without_secondary", "args": switchover(),
         "expect": ["the global cluster pay-solo has no secondary cluster", "add one"]},
        # guardrails, a hosted zone and a topic that do not exist: every problem in one message
        {"id": "every_problem_at_once",
         "args": failover(abort_if_alarms=["orders-lag"], dns_record="db.example.internal",
                          hosted_zone_id="ZNOTHERE1", notify_topic_arn=f"arn:aws:sns:us-east-1:{ACCOUNT}:dr-nowhere"),
         "expect": ["orders-lag is in ALARM", "no Route 53 hosted zone 'ZNOTHERE1' exists", "no SNS topic",
                    "dr-nowhere"]},
        # negative and not finite objectives
        {"id": "negative_objectives", "args": failover(max_rto_seconds=-1, max_rpo_seconds=-5),
         "expect": ["max_rto_seconds must be finite and not negative", "max_rpo_seconds must be finite and not "
                    "negative"]},
        {"id": "nan_and_inf_objectives", "args": failover(max_rto_seconds="nan", max_lag_seconds="inf"),
         "expect": ["max_rto_seconds must be finite and not negative, got nan",
                    "max_lag_seconds must be finite and not negative, got inf"]},
        # placement of the rehearsal's replica: rehearsal only, real security group ids
        {"id": "placement_outside_rehearsal", "args": failover(db_subnet_group_name="dr-private"),
         "expect": ["db_subnet_group_name applies to mode=rehearsal, not mode=failover"]},
        {"id": "security_group_name_not_id", "args": rehearsal(vpc_security_group_ids=["default"]),
         "expect": ["vpc_security_group_ids: 'default' is not a security group id"]},
        # a CNAME at the zone apex: Route 53 would refuse it only after the promotion
        {"id": "dns_record_at_zone_apex", "args": failover(dns_record="example.internal", hosted_zone_id=zone_id),
         "expect": ["dns_record example.internal is the apex of the hosted zone example.internal",
                    "name a record inside the zone, like db.example.internal"]},
    ]


def wait_available(rds, identifier, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = rds.describe_db_instances(DBInstanceIdentifier=identifier)["DBInstances"][0]
        if found["DBInstanceStatus"] == "available":
            return found
        time.sleep(0.2)
    raise AssertionError(f"{identifier} not available after {timeout}s")


@pytest.fixture(scope="module")
def setup(lab):
    lab.control.reset()
    east, west = lab.client("rds"), lab.client("rds", region="us-west-2")
    common = dict(Engine="postgres", DBInstanceClass="db.t3.micro", MasterUsername="app",
                  MasterUserPassword=PASSWORD, AllocatedStorage=20)
    east.create_db_instance(DBInstanceIdentifier="orders", MultiAZ=True, BackupRetentionPeriod=1, **common)
    source = wait_available(east, "orders")
    west.create_db_instance_read_replica(DBInstanceIdentifier="orders-dr", SourceRegion="us-east-1",
                                         SourceDBInstanceIdentifier=source["DBInstanceArn"])
    wait_available(west, "orders-dr")
    cluster = east.create_db_cluster(DBClusterIdentifier="pay-east", Engine="aurora-postgresql",
                                     MasterUsername="app", MasterUserPassword=PASSWORD)["DBCluster"]
    east.create_global_cluster(GlobalClusterIdentifier="pay-solo", SourceDBClusterIdentifier=cluster["DBClusterArn"])
    cloudwatch = lab.client("cloudwatch")
    cloudwatch.put_metric_alarm(AlarmName="orders-lag", MetricName="ReplicaLag", Namespace="AWS/RDS",
                                Statistic="Maximum", Period=60, EvaluationPeriods=1, Threshold=30,
                                ComparisonOperator="GreaterThanThreshold")
    cloudwatch.set_alarm_state(AlarmName="orders-lag", StateValue="ALARM", StateReason="lag 300 s")
    zone = lab.client("route53").create_hosted_zone(Name="example.internal", CallerReference="dr-drill-bad-inputs")
    yield {"zone": zone["HostedZone"]["Id"].split("/")[-1]}
    lab.control.reset()


def test_bad_inputs_are_refused_before_any_change(lab, setup):
    assert_all_refused(lab, run_module_cases, MODULE, cases(setup["zone"]), secrets=[PASSWORD])
