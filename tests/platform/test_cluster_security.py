"""The fences the cluster manifests promise, checked offline: who reaches which port of which pod
(Kubernetes NetworkPolicy semantics), which identities pods run as, and what the AWS launcher
config lets Ray's launcher open."""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

import yaml

from tests.platform.test_cluster_config import (
    PLATFORM,
    documents,
    groups,
    kube,
    ray_cluster_specs,
    walk,
)

GENIE = {"kubernetes.io/metadata.name": "genie"}  # the namespace the manifests are applied in
MONITORING = {"kubernetes.io/metadata.name": "monitoring"}
PROMETHEUS = {"app.kubernetes.io/name": "prometheus"}


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, f"selector form not modelled here: {selector}"
    return selector.get("matchLabels", {}).items() <= labels.items()


def peer_admits(peer: dict[str, Any], namespace: dict[str, str], pod: dict[str, str]) -> bool:
    """One `from` entry: a bare podSelector picks pods of the policy's own namespace only."""
    assert "ipBlock" not in peer, "ipBlock peers are not modelled here"
    in_namespace = selects(peer["namespaceSelector"], namespace) if "namespaceSelector" in peer \
        else namespace == GENIE  # fmt: skip
    return in_namespace and selects(peer.get("podSelector", {}), pod)


def port_listed(rule: dict[str, Any], port: int) -> bool:
    listed = rule.get("ports", [{"port": port}])  # no `ports`: every port
    return any(p["port"] <= port <= p.get("endPort", p["port"]) for p in listed)


@functools.cache
def ingress_policies() -> tuple[dict[str, Any], ...]:
    return tuple(d["spec"] for d in kube("NetworkPolicy") if "Ingress" in d["spec"]["policyTypes"])


def admitted(pod: dict[str, str], port: int, namespace: dict[str, str], source: dict[str, str]):
    """Whether the manifests' NetworkPolicies let a pod labelled `source` in `namespace` connect
    to `port` of a pod labelled `pod` in the genie namespace."""
    selecting = [p for p in ingress_policies() if selects(p["podSelector"], pod)]
    assert selecting, f"no policy selects {pod}: everything would reach it"
    return any(
        port_listed(rule, port)
        and any(peer_admits(peer, namespace, source) for peer in rule.get("from", [{}]))
        for policy in selecting
        for rule in policy.get("ingress", [])
    )


def ray_pods() -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(where, labels, rayStartParams) of every Ray pod, with the labels KubeRay adds itself."""
    pods = []
    for name, spec in ray_cluster_specs():
        for group_name, group in groups(spec):
            labels = {
                **group["template"]["metadata"]["labels"],
                "ray.io/cluster": name.split()[-1],
                "ray.io/node-type": "head" if group_name == "head" else "worker",
                "ray.io/group": "headgroup" if group_name == "head" else group_name,
            }
            pods.append((f"{name} {group_name}", labels, group["rayStartParams"]))
    return pods


def test_prometheus_reaches_the_metrics_port_of_every_ray_pod_and_nothing_else():
    pods = ray_pods()
    assert len(pods) >= 3
    for where, labels, params in pods:
        metrics = int(params["metrics-export-port"])
        assert admitted(labels, metrics, MONITORING, PROMETHEUS), f"{where}: metrics not scraped"
        for port in (6379, 8076, 8077, 8078, 8265, 10001, 10002, 52365):
            assert not admitted(labels, port, MONITORING, PROMETHEUS), f"{where}: {port}"
        other_namespace = {"kubernetes.io/metadata.name": "default"}
        assert not admitted(labels, metrics, other_namespace, PROMETHEUS), where
        assert not admitted(labels, metrics, GENIE, {"app": "something-else"}), where


def test_every_service_account_a_pod_names_is_created_beside_it():
    named = 0
    for path, doc in documents():
        created = {
            d["metadata"]["name"]
            for d in yaml.safe_load_all(path.read_text())
            if d and d.get("kind") == "ServiceAccount"
        }
        for key, value in walk(doc):
            if key == "serviceAccountName":
                named += 1
                assert value in created, f"{path.name}: {value} is named but never created"
    assert named >= 4, "found too few serviceAccountName fields: the scan looked wrongly"
    accounts = {d["metadata"]["name"]: d for d in kube("ServiceAccount")}
    assert set(accounts) >= {"genie-ray", "genie-mlflow"}
    for name in ("genie-ray", "genie-mlflow"):  # IRSA: the bucket roles, no keys in pods
        assert "eks.amazonaws.com/role-arn" in accounts[name]["metadata"]["annotations"], name
    for where, pod in pod_specs():
        if "worker" in where or "mlflow" in where:  # none of them calls the Kubernetes API
            mounts = pod.get("automountServiceAccountToken")
            account = accounts.get(pod.get("serviceAccountName", ""), {})
            assert False in (mounts, account.get("automountServiceAccountToken")), where


def pod_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = [(f"{name} {g}", group["template"]["spec"])
             for name, spec in ray_cluster_specs() for g, group in groups(spec)]  # fmt: skip
    specs += [
        (d["metadata"]["name"], d["spec"]["template"]["spec"])
        for d in kube("Deployment") + kube("StatefulSet")
    ]
    return specs


def test_aws_nodes_pin_private_subnets_and_our_own_security_group():
    from ray.autoscaler._private.aws.config import _configure_security_group

    config = yaml.safe_load((PLATFORM / "cluster" / "aws-cluster.yaml").read_text())
    assert config["provider"]["use_internal_ips"] is True
    node_configs = [t["node_config"] for t in config["available_node_types"].values()]
    subnets = {tuple(c.get("SubnetIds", ())) for c in node_configs}
    security_groups = {tuple(c.get("SecurityGroupIds", ())) for c in node_configs}
    # One set of subnets and one group for every node type: one VPC, one fence.
    assert len(subnets) == 1 and len(security_groups) == 1, (subnets, security_groups)
    (subnet_ids,), (group_ids,) = subnets, security_groups
    zones = config["provider"]["availability_zone"].split(",")
    assert len(subnet_ids) == len(zones), "one private subnet per availability zone"
    assert all(re.fullmatch(r"subnet-[0-9a-f]{8,17}", s) for s in subnet_ids), subnet_ids
    assert group_ids and all(re.fullmatch(r"sg-[0-9a-f]{8,17}", g) for g in group_ids)
    assert "security_group" not in config["provider"], "rules for a launcher-made group"
    # Ray's launcher makes its own group (SSH open to 0.0.0.0/0) for every node type without
    # SecurityGroupIds; given them everywhere it makes none and calls no AWS API.
    assert _configure_security_group(copy.deepcopy(config)) == config
