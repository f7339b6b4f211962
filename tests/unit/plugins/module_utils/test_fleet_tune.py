# Copyright: dbre.rds contributors; GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
import pytest

from ansible_collections.dbre.rds.plugins.module_utils.fleet_tune import shared_group_problems


def host(group="orders-pg15", region="us-east-1", kind="db_parameter_group_name", **settings):
    base = dict(region=region, kind=kind, group=group, instance_class="db.r6g.4xlarge", workload="oltp",
                value_style="formula", overrides={})
    base.update(settings)
    return base


@pytest.mark.parametrize("hosts, expected", [
    # one host per group, or hosts that agree on everything: one tune fits them all
    ({"a": host(), "b": host(group="other", instance_class="db.t4g.medium")}, []),
    ({"a": host(), "b": host()}, []),
    # the same group name in two regions is two groups
    ({"a": host(), "b": host(region="eu-west-1", instance_class="db.t4g.medium")}, []),
    # differing class, workload, value style, overrides, or an unknown class: refused, naming hosts and values
    ({"orders-db": host(), "orders-small": host(instance_class="db.t4g.medium")},
     ["orders-pg15 (us-east-1) is shared by orders-db, orders-small, which differ in instance_class: orders-db "
      "db.r6g.4xlarge, orders-small db.t4g.medium."]),
    ({"a": host(), "b": host(workload="olap")}, ["differ in workload: a oltp, b olap."]),
    ({"a": host(), "b": host(value_style="absolute")}, ["differ in value_style: a formula, b absolute."]),
    ({"a": host(), "b": host(overrides={"work_mem": "64MB"})},
     ['differ in overrides: a {}, b {"work_mem": "64MB"}.']),
    ({"a": host(), "b": host(instance_class=None)}, ["differ in instance_class: a db.r6g.4xlarge, b unknown."]),
    ({"a": host(), "b": host(instance_class="db.t4g.medium", workload="olap")},
     ["differ in instance_class: a db.r6g.4xlarge, b db.t4g.medium; workload: a oltp, b olap."]),
    # a cluster parameter group says so
    ({"c1": host(kind="db_cluster_parameter_group_name", group="aur"),
      "c2": host(kind="db_cluster_parameter_group_name", group="aur", workload="olap")},
     ["The cluster parameter group aur (us-east-1)"]),
    # hosts without a group are another check's business
    ({"a": host(group=None), "b": host(group=None, workload="olap")}, []),
])
def test_hosts_sharing_a_group_must_agree_on_class_and_settings(hosts, expected):
    problems = shared_group_problems(hosts)
    assert len(problems) == len(expected)
    for problem, fragment in zip(problems, expected):
        assert fragment in problem
        assert "give the databases of another class or other settings their own parameter group" in problem


def test_each_differing_group_is_one_problem():
    hosts = {"a": host(), "b": host(workload="olap"), "c": host(group="g2"), "d": host(group="g2", instance_class="x")}
    assert [problem.split(" is shared")[0] for problem in shared_group_problems(hosts)] == [
        "The parameter group g2 (us-east-1)", "The parameter group orders-pg15 (us-east-1)"]
