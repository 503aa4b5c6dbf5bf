"""Every overlay renders, every object validates offline (the Kubernetes OpenAPI schemas,
the KEDA and Prometheus Operator CRDs), and the policies a platform team checks in review
hold: probes, limits, non-root, pinned images, headless Services, budgets, stable ids."""

import re
import tomllib

import pytest

from manifests import (
    OVERLAYS,
    ROOT,
    containers,
    crd_schemas,
    name,
    render,
    validate,
    workloads,
)

CRDS = crd_schemas()
RENDERED = {overlay: render(overlay) for overlay in OVERLAYS}


def stop_grace_seconds():
    """The services' stop grace, from the runtime's source."""
    source = (ROOT / "crates/bridge-runtime/src/service.rs").read_text()
    found = re.search(r"const STOP_GRACE: Duration = Duration::from_secs\((\d+)\)", source)
    assert found, "STOP_GRACE not found in service.rs"
    return int(found.group(1))


def job_flag(objects, flag):
    (job,) = [o for o in objects if name(o) == "Job/create-topics"]
    args = job["spec"]["template"]["spec"]["containers"][0]["args"]
    return int(args[args.index(flag) + 1])


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_its_schema(overlay):
    problems = [
        f"{name(obj)}: {problem}"
        for obj in RENDERED[overlay]
        for problem in validate(obj, CRDS)
    ]
    assert problems == []


def test_the_validator_refuses_what_the_api_server_would():
    """The check can fail: an unknown field, a wrong type, an unknown CRD field."""
    (sts, *_) = [o for o in RENDERED["dev"] if o["kind"] == "StatefulSet"]
    bad = {**sts, "spec": {**sts["spec"], "replica": 2}}
    assert validate(bad, CRDS)
    bad = {**sts, "spec": {**sts["spec"], "replicas": "two"}}
    assert validate(bad, CRDS)
    (scaled, *_) = [o for o in RENDERED["production"] if o["kind"] == "ScaledObject"]
    bad = {**scaled, "spec": {**scaled["spec"], "maxReplicas": 3}}
    assert validate(bad, CRDS)
    assert validate({"apiVersion": "example.com/v1", "kind": "Nothing", "metadata": {}}, CRDS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_probed_limited_non_root_and_pinned(overlay):
    problems = []
    for workload in workloads(RENDERED[overlay]):
        pod = workload["spec"]["template"]["spec"]
        pod_security = pod.get("securityContext", {})
        if not pod_security.get("runAsNonRoot") or pod_security.get("runAsUser", 0) == 0:
            problems.append(f"{name(workload)}: not non-root")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{name(workload)}: seccomp not RuntimeDefault")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{name(workload)}: mounts a service account token")
        for c in containers(workload):
            where = f"{name(workload)}/{c['name']}"
            if workload["kind"] != "Job":
                for probe in ("livenessProbe", "readinessProbe"):
                    if probe not in c:
                        problems.append(f"{where}: no {probe}")
            resources = c.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in resources.get(part, {}):
                        problems.append(f"{where}: no {part}.{what}")
            security = c.get("securityContext", {})
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{where}: privilege escalation allowed")
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{where}: root filesystem writable")
            if security.get("capabilities", {}).get("drop") != ["ALL"]:
                problems.append(f"{where}: capabilities not all dropped")
            image = c["image"]
            tag = image.rsplit(":", 1)[1] if ":" in image.rsplit("/", 1)[-1] else ""
            if tag in ("", "latest") and "@sha256:" not in image:
                problems.append(f"{where}: image {image} not pinned")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_statefulset_has_its_headless_service_claims_and_a_stable_id(overlay):
    objects = RENDERED[overlay]
    services = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Service"}
    problems = []
    for sts in [o for o in objects if o["kind"] == "StatefulSet"]:
        svc = services.get(sts["spec"].get("serviceName"))
        labels = sts["spec"]["template"]["metadata"]["labels"]
        if svc is None or svc["spec"].get("clusterIP") != "None":
            problems.append(f"{name(sts)}: no headless Service {sts['spec'].get('serviceName')}")
        elif any(labels.get(k) != v for k, v in svc["spec"]["selector"].items()):
            problems.append(f"{name(sts)}: its Service selects other pods")
        claims = [t["metadata"]["name"] for t in sts["spec"].get("volumeClaimTemplates", [])]
        (c,) = sts["spec"]["template"]["spec"]["containers"]
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        if "state" not in claims or mounts.get("state") != "/var/lib/bridge":
            problems.append(f"{name(sts)}: state not on a volume claim at /var/lib/bridge")
        env = {e["name"]: e for e in c.get("env", [])}
        field = env.get("BRIDGE__PROCESSOR__INSTANCE_ID", {}).get("valueFrom", {})
        if field.get("fieldRef", {}).get("fieldPath") != "metadata.name":
            problems.append(f"{name(sts)}: instance id not the pod name")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_drains_budgets_and_grace(overlay):
    objects = RENDERED[overlay]
    budgets = [o for o in objects if o["kind"] == "PodDisruptionBudget"]
    grace = stop_grace_seconds()
    problems = []
    for workload in [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]:
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [
            b
            for b in budgets
            if all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
        ]
        if len(covering) != 1:
            problems.append(f"{name(workload)}: {len(covering)} disruption budgets")
        elif "minAvailable" in covering[0]["spec"]:
            problems.append(f"{name(workload)}: minAvailable can block a drain of one replica")
        pod = workload["spec"]["template"]["spec"]
        if pod.get("terminationGracePeriodSeconds", 30) <= grace:
            problems.append(f"{name(workload)}: termination grace not above the {grace} s stop grace")
    assert problems == []


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configuration_and_secrets_are_what_the_commands_read(overlay):
    objects = RENDERED[overlay]
    config_maps = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    problems = []
    for workload in workloads(objects):
        pod = workload["spec"]["template"]["spec"]
        mounted = set()
        for volume in pod.get("volumes", []):
            for source in volume.get("projected", {}).get("sources", []):
                ref = source.get("configMap")
                if ref and ref["name"] in config_maps:
                    mounted |= set(config_maps[ref["name"]]["data"])
                elif ref and not ref.get("optional"):
                    problems.append(f"{name(workload)}: ConfigMap {ref['name']} not rendered")
        secrets = {
            f"/var/run/secrets/bridge/{item['path']}"
            for volume in pod.get("volumes", [])
            for item in volume.get("secret", {}).get("items", [])
        }
        texts = {
            key: text
            for ref in config_maps.values()
            for key, text in ref.get("data", {}).items()
        }
        for c in containers(workload):
            command = c.get("command", []) + c.get("args", [])
            config = command[command.index("--config") + 1] if "--config" in command else None
            if config is None or not config.startswith("/etc/bridge/"):
                problems.append(f"{name(workload)}: no --config under /etc/bridge")
                continue
            key = config.removeprefix("/etc/bridge/")
            if key not in mounted:
                problems.append(f"{name(workload)}: {config} is not in its ConfigMap")
                continue
            # Every secret file the configuration names is an item of the pod's Secret
            # (bridgectl reads only the [kafka] and [registry] sections).
            settings = tomllib.loads(texts[key])
            if command[0] == "bridgectl":
                settings = {k: settings.get(k, {}) for k in ("kafka", "registry")}
            for path in re.findall(r"'(/var/run/secrets/bridge/[^']+)'", repr(settings)):
                if path not in secrets:
                    problems.append(f"{name(workload)}: {key} reads {path}, which is not mounted")
    assert problems == []


def test_production_replicates_topics_spreads_replicas_and_caps_scaling():
    objects = RENDERED["production"]
    assert job_flag(objects, "--replication-factor") == 3
    assert job_flag(objects, "--min-insync-replicas") == 2
    partitions = job_flag(objects, "--partitions")
    by_name = {name(o): o for o in objects}
    scaled = [o for o in objects if o["kind"] == "ScaledObject"]
    assert scaled, "no lag-based autoscaling"
    for s in scaled:
        target = f"{s['spec']['scaleTargetRef']['kind']}/{s['spec']['scaleTargetRef']['name']}"
        assert target in by_name, f"{name(s)} scales {target}, which is not rendered"
        assert s["spec"]["maxReplicaCount"] <= partitions, f"{name(s)} above the partitions"
        assert s["spec"]["minReplicaCount"] == by_name[target]["spec"]["replicas"]
        assert all(t["type"] == "kafka" for t in s["spec"]["triggers"])
    singles = {"StatefulSet/order-ingest-poller", "StatefulSet/reconciler"}
    assert all(by_name[s]["spec"]["replicas"] == 1 for s in singles)
    assert not singles & {
        f"{s['spec']['scaleTargetRef']['kind']}/{s['spec']['scaleTargetRef']['name']}" for s in scaled
    }
    for workload in [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]:
        affinity = workload["spec"]["template"]["spec"].get("affinity", {})
        assert affinity.get("podAntiAffinity"), f"{name(workload)}: no anti-affinity"
    kinds = {o["kind"] for o in objects}
    assert {"ServiceMonitor", "PrometheusRule", "Ingress", "NetworkPolicy"} <= kinds
    config = {o["metadata"]["name"]: o for o in objects if o["kind"] == "ConfigMap"}
    (bridge_config,) = [c for n, c in config.items() if n.startswith("bridge-config-")]
    for key, text in bridge_config["data"].items():
        if key != "mapping.toml":
            assert '"security.protocol" = "SASL_SSL"' in text, f"{key}: Kafka not over SASL_SSL"


def test_dev_runs_one_of_each_with_one_copy_topics():
    objects = RENDERED["dev"]
    assert job_flag(objects, "--replication-factor") == 1
    for workload in [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]:
        assert workload["spec"]["replicas"] == 1, name(workload)
    assert not [o for o in objects if o["kind"] == "ScaledObject"]
