"""The cluster definitions in platform/ checked offline, and the security defaults they rely on.

No Kubernetes or cloud here, so each file is checked against what can be known on this machine:
Ray's own JSON schema for the cluster launcher, Ray's RuntimeEnv for runtime_env blocks, the
fields KubeRay and Kubernetes require, the installed Ray version for every image, and the jobs'
own parsers and `--help` for every entrypoint. Then: a checkpoint holding pickled code is
refused, and output names built by curation never come from (hostile) input names.
"""

from __future__ import annotations

import ast
import configparser
import csv
import json
import os
import pickle
import re
import shlex
import subprocess
import sys
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import torch
import yaml
from ray.runtime_env import RuntimeEnv

import tests.curate_videos as cv
from jobs.cli import SUBCOMMANDS
from jobs.common.config import load_config
from tests import sources
from tests.conftest import REPO

PLATFORM = REPO / "platform"
RAY_VERSION = ray.__version__
PY_TAG = f"py{sys.version_info.major}{sys.version_info.minor}"
CPU_IMAGE = f"rayproject/ray:{RAY_VERSION}-{PY_TAG}"
GPU_IMAGE = f"{CPU_IMAGE}-gpu"
EXPECTED_FILES = {
    "cluster/raycluster.yaml",
    "cluster/rayjobs.yaml",
    "cluster/networkpolicy.yaml",
    "cluster/aws-cluster.yaml",
    "cluster/runtime_env.yaml",
    "mlflow/docker-compose.yml",
    "mlflow/k8s.yaml",
}
API_VERSIONS = {
    "RayCluster": "ray.io/v1",
    "RayJob": "ray.io/v1",
    "NetworkPolicy": "networking.k8s.io/v1",
    "Deployment": "apps/v1",
    "StatefulSet": "apps/v1",
    "Service": "v1",
    "ConfigMap": "v1",
    "ServiceAccount": "v1",
}
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
JOB_MODULES = {module for module, _ in SUBCOMMANDS.values()}


# ---------------------------------------------------------------- reading the files


def yaml_files() -> list[Path]:
    return sorted([*PLATFORM.rglob("*.yaml"), *PLATFORM.rglob("*.yml")])


def documents() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, doc)
        for path in yaml_files()
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def kube(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in documents() if doc.get("kind") == kind]


def walk(value: Any, key: str | None = None):
    """Every (key, value) pair in a nested YAML value."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield k, v
            yield from walk(v, k)
    elif isinstance(value, list):
        for item in value:
            yield from walk(item, key)


def pyproject_pins() -> dict[str, str]:
    """name -> exact version of every `name==version` dependency in pyproject.toml."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for requirement in project["dependencies"]:
        name, version = requirement.split("==")
        pins[re.sub(r"\[.*\]", "", name).lower()] = version
    return pins


def check_pins(packages: list[str], where: str) -> None:
    """Every package is pinned exactly, to the version pyproject.toml pins (the tested one)."""
    pins = pyproject_pins()
    assert packages, f"{where}: no packages"
    for requirement in packages:
        assert "==" in requirement, f"{where}: {requirement!r} is not pinned"
        name, version = requirement.split("==")
        assert pins.get(name.lower()) == version, (
            f"{where}: {requirement} but pyproject.toml pins {name}=={pins.get(name.lower())}"
        )


def ray_cluster_specs() -> list[tuple[str, dict[str, Any]]]:
    specs = [(f"RayCluster {d['metadata']['name']}", d["spec"]) for d in kube("RayCluster")]
    specs += [
        (f"RayJob {d['metadata']['name']}", d["spec"]["rayClusterSpec"])
        for d in kube("RayJob")
        if "rayClusterSpec" in d["spec"]
    ]
    return specs


def groups(spec: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    head = [("head", spec["headGroupSpec"])]
    return head + [(g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]


def quantity(text: str | int) -> float:
    """A Kubernetes quantity (8, 500m, 64Gi, 1000Gi) as a number (bytes for memory)."""
    text = str(text)
    units = {"m": 1e-3, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}
    for unit, factor in units.items():
        if text.endswith(unit):
            return float(text[: -len(unit)]) * factor
    return float(text)


def entrypoints() -> list[tuple[str, list[str]]]:
    """(RayJob name, argv) of every RayJob entrypoint."""
    return [(d["metadata"]["name"], shlex.split(d["spec"]["entrypoint"])) for d in kube("RayJob")]


# ---------------------------------------------------------------- parsing and schemas


def test_every_yaml_under_platform_parses():
    found = {str(p.relative_to(PLATFORM)) for p in yaml_files()}
    assert found >= EXPECTED_FILES, f"missing: {EXPECTED_FILES - found}"
    for path in yaml_files():
        docs = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
        assert docs, f"{path} holds no document"
        assert all(isinstance(d, dict) for d in docs), f"{path}: a document is not a mapping"


def test_kubernetes_documents_have_the_required_fields():
    docs = [(p, d) for p, d in documents() if "kind" in d]
    assert {d["kind"] for _, d in docs} >= {"RayCluster", "RayJob", "NetworkPolicy"}
    for path, doc in docs:
        where = f"{path.name}: {doc['kind']}"
        assert doc["kind"] in API_VERSIONS, f"{where}: unexpected kind"
        assert doc.get("apiVersion") == API_VERSIONS[doc["kind"]], where
        assert DNS_1123.match(doc["metadata"]["name"]), f"{where}: bad name"
        body = {"ConfigMap": "data", "ServiceAccount": "metadata"}.get(doc["kind"], "spec")
        assert body in doc, where
        if doc["kind"] in ("Deployment", "StatefulSet"):
            labels = doc["spec"]["template"]["metadata"]["labels"]
            assert doc["spec"]["selector"]["matchLabels"].items() <= labels.items(), where
            for container in doc["spec"]["template"]["spec"]["containers"]:
                assert container["name"] and container["image"], where
                assert "limits" in container["resources"], f"{where}: no resource limits"


def test_ray_clusters_have_head_cpu_and_gpu_groups_with_sane_resources():
    specs = ray_cluster_specs()
    assert specs
    for name, spec in specs:
        assert spec["rayVersion"] == RAY_VERSION, f"{name}: rayVersion {spec['rayVersion']}"
        assert spec.get("authOptions", {}).get("mode") == "token", f"{name}: token auth off"
        assert spec["headGroupSpec"]["rayStartParams"].get("num-cpus") == "0", (
            f"{name}: the head should schedule no work"
        )
        gpu_groups = []
        for group_name, group in groups(spec):
            where = f"{name} group {group_name}"
            params = group["rayStartParams"]
            assert all(isinstance(v, str) for v in params.values()), f"{where}: params as strings"
            if group_name != "head":
                assert 0 <= group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], where
                assert group["maxReplicas"] > 0, where
            pod = group["template"]["spec"]
            (container,) = pod["containers"]
            limits, requests = container["resources"]["limits"], container["resources"]["requests"]
            assert limits == requests, f"{where}: requests != limits (Ray sizes itself by them)"
            assert float(params["num-cpus"]) <= quantity(limits["cpu"]), where
            gpus = int(limits.get("nvidia.com/gpu", 0))
            assert int(params.get("num-gpus", 0)) == gpus, f"{where}: num-gpus vs nvidia.com/gpu"
            assert container["image"] == (GPU_IMAGE if gpus else CPU_IMAGE), where
            if gpus:
                gpu_groups.append(group_name)
            # The object store lives in /dev/shm: a memory-backed volume large enough for it.
            store = int(params["object-store-memory"])
            assert store <= 0.5 * quantity(limits["memory"]), f"{where}: object store too big"
            (shm,) = [v for v in pod["volumes"] if v["name"] == "shm"]
            assert shm["emptyDir"]["medium"] == "Memory", where
            assert quantity(shm["emptyDir"]["sizeLimit"]) >= store, f"{where}: shm < store"
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert mounts.get("/dev/shm") == "shm", where
        assert gpu_groups, f"{name}: no GPU group for Ray Train"
        assert len(groups(spec)) - len(gpu_groups) >= 2, f"{name}: no CPU group for Ray Data"


def test_every_image_is_pinned_to_the_installed_ray_and_python():
    images = [(p.name, v) for p, d in documents() for k, v in walk(d) if k.endswith("image")]
    images += [
        (p.name, line.split()[1])
        for p in PLATFORM.rglob("Dockerfile")
        for line in p.read_text().splitlines()
        if line.startswith("FROM ")
    ]
    assert len(images) > 5
    for where, image in images:
        assert ":" in image and not image.endswith((":latest", ":nightly")), f"{where}: {image}"
        if image.startswith("rayproject/ray"):
            assert image in (CPU_IMAGE, GPU_IMAGE), f"{where}: {image}, Ray here is {RAY_VERSION}"
    assert {CPU_IMAGE, GPU_IMAGE} <= {image for _, image in images}


def test_network_policy_fences_every_ray_port():
    policies = {d["metadata"]["name"]: d["spec"] for d in kube("NetworkPolicy")}
    deny = [s for s in policies.values() if s["podSelector"] == {} and not s.get("ingress")]
    assert deny and "Ingress" in deny[0]["policyTypes"], "no default-deny ingress policy"
    ray_pods = {"app.kubernetes.io/name": "genie-ray"}
    internal = [
        rule
        for s in policies.values()
        if s["podSelector"].get("matchLabels", {}).items() >= ray_pods.items()
        for rule in s.get("ingress", [])
    ]
    for spec in policies.values():
        for rule in spec.get("ingress", []):
            assert rule.get("from"), "an ingress rule without `from` opens ports to everyone"

    def admitted_from_ray_pods(port: int) -> bool:
        return any(
            any(f.get("podSelector", {}).get("matchLabels") == ray_pods for f in rule["from"])
            and (
                "ports" not in rule  # every port, from these pods only
                or any(p["port"] <= port <= p.get("endPort", p["port"]) for p in rule["ports"])
            )
            for rule in internal
        )

    for name, spec in ray_cluster_specs():
        for group_name, group in groups(spec):
            params = group["rayStartParams"]
            ports = [int(v) for k, v in params.items() if k.endswith("port") and k != "port"]
            ports += [int(params.get("port", 6379))] if group_name == "head" else []
            ports += [int(params["min-worker-port"]), int(params["max-worker-port"])]
            assert len(ports) >= 9, f"{name} {group_name}: Ray ports left random cannot be fenced"
            for port in ports:
                assert admitted_from_ray_pods(port), f"{name} {group_name}: port {port} unfenced"
            labels = group["template"]["metadata"]["labels"]
            assert labels.items() >= ray_pods.items(), f"{group_name}: pods miss the policy label"
    # The jobs API is reachable by labelled client pods only, never from everywhere.
    head_rules = [r for s in policies.values() for r in s.get("ingress", []) if any(
        p["port"] == 8265 for p in r.get("ports", []))]  # fmt: skip
    assert head_rules, "no rule admits the jobs API's clients"
    for rule in head_rules:
        assert all(f.get("podSelector", {}).get("matchLabels") for f in rule["from"]), rule


def test_aws_cluster_launcher_config_matches_rays_schema():
    from ray.autoscaler._private.util import fillout_defaults, validate_config

    config = yaml.safe_load((PLATFORM / "cluster" / "aws-cluster.yaml").read_text())
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    jsonschema.validate(config, schema)
    validate_config(fillout_defaults(config))  # Ray's own check, with its AWS defaults filled
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    assert types[config["head_node_type"]]["resources"] == {"CPU": 0}
    gpu = [t for t in types.values() if t["resources"].get("GPU")]
    assert gpu and all(t["docker"]["worker_image"] == GPU_IMAGE for t in gpu)
    assert config["docker"]["image"] == CPU_IMAGE
    assert sum(t.get("max_workers", 0) for t in types.values()) <= config["max_workers"]
    starts = config["head_start_ray_commands"] + config["worker_start_ray_commands"]
    assert all("RAY_AUTH_MODE=token" in c for c in starts if "ray start" in c)
    assert any("--dashboard-host=127.0.0.1" in c for c in config["head_start_ray_commands"])
    (pip,) = [c for c in config["setup_commands"] if c.startswith("pip install")]
    check_pins([w for w in pip.split() if "==" in w], "aws-cluster.yaml setup_commands")


def test_runtime_envs_are_valid_and_pinned_like_pyproject():
    envs = [
        (
            "runtime_env.yaml",
            yaml.safe_load((PLATFORM / "cluster" / "runtime_env.yaml").read_text()),
        )
    ]
    envs += [(f"RayJob {d['metadata']['name']}", yaml.safe_load(d["spec"]["runtimeEnvYAML"]))
             for d in kube("RayJob")]  # fmt: skip
    for where, env in envs:
        RuntimeEnv(**env)  # Ray's own validation of every field
        check_pins(env["pip"]["packages"], where)
        assert env["env_vars"]["MLFLOW_TRACKING_URI"].startswith("http"), where
        assert not any("PASSWORD" in k or "SECRET" in k for k in env["env_vars"]), where
    (local,) = [env for where, env in envs if where == "runtime_env.yaml"]
    assert "GENIE_I3D_WEIGHTS" in local["env_vars"]
    assert {".git", ".venv"} <= set(local["excludes"])


def test_rayjobs_run_on_the_cluster_with_object_store_paths():
    clusters = {d["metadata"]["name"] for d in kube("RayCluster")}
    for doc in kube("RayJob"):
        spec, name = doc["spec"], doc["metadata"]["name"]
        if "clusterSelector" in spec:
            assert spec["clusterSelector"]["ray.io/cluster"] in clusters, name
        runtime = yaml.safe_load(spec["runtimeEnvYAML"])
        assert runtime["working_dir"].startswith("s3://"), f"{name}: code from the object store"
        submitter = spec["submitterPodTemplate"]
        assert submitter["metadata"]["labels"]["genie-ray-client"] == "true", name
        paths = [a.split("=", 1)[-1] for a in shlex.split(spec["entrypoint"]) if "/" in a]
        assert paths and all(p.startswith("s3://") for p in paths), f"{name}: {paths}"


# ---------------------------------------------------------------- entrypoints


def test_rayjob_entrypoints_parse_with_the_jobs_own_parsers():
    import importlib

    from jobs.curation.config import PRESETS_DIR as CURATE_PRESETS
    from jobs.curation.config import CurateConfig
    from jobs.training.config import PRESETS_DIR as TRAIN_PRESETS
    from jobs.training.config import TrainConfig

    seen = set()
    for name, argv in entrypoints():
        assert argv[:2] == ["python", "-m"], f"{name}: {argv[:3]}"
        module = argv[2]
        assert module in JOB_MODULES, f"{name}: {module} is not a job in jobs/cli.py"
        seen.add(module)
        try:
            args = importlib.import_module(module).build_parser().parse_args(argv[3:])
        except SystemExit:
            pytest.fail(f"{name}: `{' '.join(argv)}` is refused by {module}'s parser")
        # key=value overrides must name real fields with valid values, as the job checks them.
        if module == "jobs.train":
            config = load_config(
                TrainConfig, args.preset, [f"stage={args.stage}", *args.overrides], TRAIN_PRESETS
            )
            assert config.storage_path.startswith("s3://") and config.use_gpu, name
        if module == "jobs.curate":
            load_config(CurateConfig, args.preset, args.overrides, CURATE_PRESETS)
    assert {"jobs.curate", "jobs.train", "jobs.tokenize"} <= seen


def test_every_entrypoint_module_answers_help():
    modules = sorted({argv[2] for _, argv in entrypoints()})

    def help_of(module: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", module, "--help"],
            cwd=REPO, capture_output=True, text=True, timeout=180,
        )  # fmt: skip

    with ThreadPoolExecutor(max_workers=len(modules)) as pool:
        results = dict(zip(modules, pool.map(help_of, modules), strict=True))
    for module, result in results.items():
        assert result.returncode == 0, f"{module} --help: {result.stderr[-2000:]}"
        assert "usage:" in result.stdout, module


# ---------------------------------------------------------------- team MLflow


def server_flags(command: list[str]) -> dict[str, str | None]:
    """--flag -> value (None for a switch) of an `mlflow server` command line."""
    flags: dict[str, str | None] = {}
    for i, word in enumerate(command):
        if word.startswith("--"):
            following = command[i + 1] if i + 1 < len(command) else "--"
            flags[word] = None if following.startswith("--") else following
    return flags


def test_team_mlflow_uses_postgres_proxied_s3_auth_and_allowed_hosts():
    compose = yaml.safe_load((PLATFORM / "mlflow" / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "mlflow"}
    assert "ports" not in services["postgres"], "PostgreSQL must not be published"
    for service in services.values():
        assert all(str(p).startswith("127.0.0.1:") for p in service.get("ports", [])), service
    (deployment,) = [d for d in kube("Deployment") if d["metadata"]["name"] == "genie-mlflow"]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    commands = {"compose": services["mlflow"]["command"], "k8s": container["args"]}
    for where, command in commands.items():
        flags = server_flags(command)
        assert command[:2] == ["mlflow", "server"], where
        assert flags["--backend-store-uri"].startswith("postgresql://"), where
        assert ":" not in flags["--backend-store-uri"].split("//", 1)[1].split("@")[0], (
            f"{where}: a password in the store URI (it comes from PGPASSWORD)"
        )
        assert "--serve-artifacts" in flags and flags["--serve-artifacts"] is None, where
        assert flags["--artifacts-destination"].startswith("s3://"), where
        assert flags["--app-name"] == "basic-auth", where
        hosts = flags["--allowed-hosts"].split(",")
        assert hosts and "*" not in flags["--allowed-hosts"], where
        assert all(re.match(r"^[a-z0-9.-]+:\d+$", h) for h in hosts), f"{where}: {hosts}"
    assert server_flags(commands["compose"]).keys() == server_flags(commands["k8s"]).keys()
    env = services["mlflow"]["environment"]
    for secret in ("MLFLOW_AUTH_ADMIN_PASSWORD", "MLFLOW_FLASK_SERVER_SECRET_KEY", "PGPASSWORD"):
        assert ":?" in env[secret], f"{secret} must be required, never defaulted"
    auth = configparser.ConfigParser()
    auth.read(PLATFORM / "mlflow" / "basic_auth.ini")
    assert auth["mlflow"]["default_permission"] == "NO_PERMISSIONS"
    assert "admin_password" not in auth["mlflow"], "no password in a committed file"
    assert auth["mlflow"]["database_uri"].startswith("postgresql://")
    import mlflow

    dockerfile = (PLATFORM / "mlflow" / "Dockerfile").read_text()
    assert f'"mlflow[auth]=={mlflow.__version__}"' in dockerfile


# ---------------------------------------------------------------- checkpoints


class RunsCode:
    """A pickled object whose unpickling calls a function: what weights_only must refuse."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_pickled_code_is_refused(tmp_path):
    from models.checkpoint import load_trained, save_trained
    from models.configs import get_preset
    from models.tokenizer import VideoTokenizer

    model = VideoTokenizer(get_preset("tiny").tokenizer)
    good = save_trained(model, "tokenizer", "tiny", 3, tmp_path / "good.pt")
    assert isinstance(load_trained(good), VideoTokenizer)

    marker = tmp_path / "code-ran"
    hostile = tmp_path / "hostile.pt"
    state = {"model": model.state_dict(), "stage": "tokenizer", "preset": "tiny", "step": 3}
    torch.save({**state, "extra": RunsCode(marker)}, hostile)
    with pytest.raises(pickle.UnpicklingError, match="Weights only load failed"):
        load_trained(hostile)
    assert not marker.exists()
    torch.load(hostile, weights_only=False)  # the file really is hostile: a full unpickle runs it
    assert marker.exists()


def test_every_torch_load_is_weights_only_and_nothing_else_unpickles():
    loads = []
    for folder in ("jobs", "models", "pipelines"):
        for path in (REPO / folder).rglob("*.py"):
            for node in ast.walk(sources.parse(path.read_text())):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                    continue
                owner = getattr(node.func.value, "id", None)
                keywords = {k.arg: getattr(k.value, "value", None) for k in node.keywords}
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                if (owner, node.func.attr) == ("torch", "load"):
                    loads.append(where)
                    assert keywords.get("weights_only") is True, f"{where}: weights_only=True"
                assert (owner, node.func.attr) not in {("pickle", "load"), ("pickle", "loads")}, (
                    f"{where}: plain unpickling"
                )
                if node.func.attr == "load" and owner in ("np", "numpy"):
                    assert keywords.get("allow_pickle") is not True, f"{where}: allow_pickle"
    assert loads, "found no torch.load at all: the scan looked in the wrong place"


# ---------------------------------------------------------------- output names


SAFE_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
HOSTILE_NAMES = [
    "..%2F..%2Fescape.mp4",
    "$(touch pwned).mp4",
    "a;rm -rf ~.mp4",
    "-rf.mp4",
    "....mp4",
    "x\u202egnp.mp4",  # right-to-left override
    "dir name with spaces.mp4",
]


def test_ids_that_name_outputs_are_hashes_whatever_the_input():
    from pipelines.curation.decode import DecodeSpec
    from pipelines.curation.scoring import clip_id, wave_id
    from pipelines.synth.corpus import plan_corpus

    spec = DecodeSpec()
    for hostile in [*HOSTILE_NAMES, "../../etc/passwd", "/abs/path", "s3://b/../../k", ""]:
        assert re.fullmatch(r"[0-9a-f]{24}", clip_id(hostile, 0, spec)), hostile
        assert re.fullmatch(r"[0-9a-f]{16}", wave_id([hostile, f"{hostile}/../x"])), hostile
    # The synthetic corpus writes only names it planned itself: plain file names.
    for source in plan_corpus(6, seed=0, duration_range=(20, 30), bad=True):
        assert SAFE_NAME.match(source.name) and source.name not in (".", ".."), source.name


@pytest.mark.slow
def test_hostile_source_names_never_escape_the_output_root(ray_cluster, mlflow_uri, tmp_path):
    from jobs.curate import main as curate

    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    sources = []
    for seed, name in enumerate(HOSTILE_NAMES):
        sources.append(cv.gameplay(raw / name, 2.5, seed=seed))
    # A manifest may name files through `..`; the names still must not reach the output.
    sources.append(raw / "sub" / ".." / HOSTILE_NAMES[0])
    manifest = tmp_path / "manifest.csv"
    with manifest.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["uri"])
        writer.writerows([[str(p)] for p in sources])
    before = set(tmp_path.parent.iterdir())
    out = tmp_path / "out" / "curated"
    code = curate(["run", "--source", str(manifest), "--out", str(out),
                   f"mlflow_uri={mlflow_uri}", "decode.clip_frames=20", "decode.stride_frames=20"],
                  prog="genie curate")  # fmt: skip
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sources"]["accepted"] >= len(HOSTILE_NAMES) - 1, summary["sources"]
    written = [p for p in out.rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert path.resolve().is_relative_to(out.resolve()), path
        for part in path.relative_to(out).parts:
            assert SAFE_NAME.match(part), f"output name from input: {part!r}"
    assert {p.name for p in tmp_path.iterdir()} == {"raw", "manifest.csv", "out"}
    assert [p for p in (tmp_path / "out").iterdir()] == [out]
    assert set(tmp_path.parent.iterdir()) == before
    assert not any(Path(d, "pwned").exists() for d in (os.getcwd(), raw, tmp_path))
