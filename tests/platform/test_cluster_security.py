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
    """Every node type launches with one network interface: our subnet, our security group and
    no public IP, whatever the subnet maps on launch. Ray's launcher takes the ids from it, makes
    no security group of its own, and asks EC2 for exactly that interface."""
    from ray.autoscaler._private.aws.config import (
        _configure_from_network_interfaces,
        _configure_security_group,
    )
    from ray.autoscaler._private.aws.node_provider import AWSNodeProvider

    config = yaml.safe_load((PLATFORM / "cluster" / "aws-cluster.yaml").read_text())
    assert config["provider"]["use_internal_ips"] is True  # private IPs are all the nodes have
    node_types = config["available_node_types"]
    interfaces = {name: t["node_config"].get("NetworkInterfaces") for name, t in node_types.items()}
    for name, nics in interfaces.items():
        # One primary interface: AWS takes AssociatePublicIpAddress only on a lone interface 0.
        assert nics is not None and len(nics) == 1, name
        (nic,) = nics
        assert nic["DeviceIndex"] == 0, name
        # False, not left out: left out, the subnet's MapPublicIpOnLaunch decides.
        assert nic["AssociatePublicIpAddress"] is False, name
        assert re.fullmatch(r"subnet-[0-9a-f]{8,17}", nic["SubnetId"]), nic
        assert nic["Groups"] and all(re.fullmatch(r"sg-[0-9a-f]{8,17}", g) for g in nic["Groups"])
    # One subnet and one group for every node type: one VPC, one fence.
    assert len({repr(nics) for nics in interfaces.values()}) == 1, interfaces
    (nic,) = next(iter(interfaces.values()))
    assert "security_group" not in config["provider"], "rules for a launcher-made group"

    # Ray copies the interface's subnet and groups up to the node config (and refuses either
    # given beside it), then makes its own group (SSH open to 0.0.0.0/0) for every node type
    # without SecurityGroupIds: here it makes none and calls no AWS API.
    configured = _configure_from_network_interfaces(config)
    for t in configured["available_node_types"].values():
        assert t["node_config"]["SubnetIds"] == [nic["SubnetId"]]
        assert t["node_config"]["SecurityGroupIds"] == nic["Groups"]
    assert _configure_security_group(copy.deepcopy(configured)) == configured

    # What the launcher sends EC2 for each node type: the interface, nothing beside it.
    requests = []

    class EC2:
        def create_instances(self, **request):
            requests.append(request)
            return []

    provider = AWSNodeProvider(config["provider"], config["cluster_name"])
    provider.ec2_fail_fast = EC2()
    for name, t in configured["available_node_types"].items():
        provider.create_node(copy.deepcopy(t["node_config"]), {"ray-user-node-type": name}, 1)
    assert len(requests) == len(node_types)
    for request in requests:
        assert request["NetworkInterfaces"] == [nic], request
        assert not {"SubnetId", "SubnetIds", "SecurityGroupIds"} & set(request), request
