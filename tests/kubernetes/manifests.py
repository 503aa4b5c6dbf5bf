"""Rendering the overlays with kustomize and validating each object offline: core kinds
against the Kubernetes OpenAPI schemas kubernetes-validate ships (strict: an unknown
field is an error), custom resources against the openAPIV3Schema of their CRD."""

import os
import pathlib
import subprocess

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
TOOLS = pathlib.Path(os.environ.get("BRIDGE_K8S_TOOLS", ROOT / ".data" / "kubernetes"))
OVERLAYS = ["dev", "production"]
# The oldest Kubernetes the manifests are meant for (matchLabelKeys in pod affinity).
KUBERNETES_VERSION = "1.33"


def render(overlay):
    """The objects `kustomize build` makes of an overlay."""
    path = ROOT / "deploy" / "kubernetes" / "overlays" / overlay
    out = subprocess.run(
        [str(TOOLS / "bin" / "kustomize"), "build", str(path)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _strict(schema):
    """A CRD's structural schema as JSON Schema, with unknown fields refused as the API
    server's strict field validation does."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {k: _strict(v) for k, v in schema.items()}
    if schema.pop("x-kubernetes-int-or-string", False):
        schema.pop("type", None)
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    preserve = schema.pop("x-kubernetes-preserve-unknown-fields", False)
    for key in [k for k in schema if k.startswith("x-kubernetes-")]:
        schema.pop(key)
    if schema.get("type") == "object" and "properties" in schema and not preserve:
        schema.setdefault("additionalProperties", False)
    return schema


def crd_schemas():
    """(apiVersion, kind) → the JSON Schema of every CRD in the tools' crds folder."""
    schemas = {}
    for path in sorted((TOOLS / "crds").glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
        for version in crd["spec"]["versions"]:
            schema = _strict(version["schema"]["openAPIV3Schema"])
            # metadata is an ObjectMeta whatever the CRD says of it (the API server checks it).
            schema.setdefault("properties", {})["metadata"] = {"type": "object"}
            schemas[(f"{group}/{version['name']}", kind)] = schema
    return schemas


def validate(obj, crds):
    """The problems of one object ([] when it is valid)."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in crds:
        validator = jsonschema.Draft7Validator(crds[key])
        return [
            f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(obj)
        ]
    try:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]} (neither core nor a known CRD)"]
    return []


def workloads(objects):
    """The StatefulSets, Deployments and Jobs."""
    return [o for o in objects if o["kind"] in ("StatefulSet", "Deployment", "Job")]


def containers(workload):
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def name(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"
