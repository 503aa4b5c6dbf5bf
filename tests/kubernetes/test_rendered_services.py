"""The manifests are what runs: each pod of the dev overlay is started from its rendered
container (command, args, environment, the ConfigMap and Secret as mounted files) against
the test broker and registry, with the simulators standing in for the staging Magento and
ERP. The topic Job runs first; every service must turn ready by its readiness probe, stay
live by its liveness probe, and stop on SIGTERM within its termination grace."""

import os
import subprocess
import time

import pytest

from manifests import name, render
from pods import Pod, bin_dir, free_port, run_job

BOOTSTRAP = os.environ.get("BRIDGE_TEST_BOOTSTRAP")
REGISTRY = os.environ.get("BRIDGE_TEST_REGISTRY")
pytestmark = pytest.mark.skipif(
    not (BOOTSTRAP and REGISTRY),
    reason="needs the test stack (make test-kubernetes runs it)",
)


def wait_http(url, timeout=60):
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} did not answer within {timeout} s")


@pytest.fixture(scope="module")
def simulators(tmp_path_factory):
    """magento-sim and erp-sim on free ports: the staging store and ERP of the dev overlay."""
    root = tmp_path_factory.mktemp("sims")
    objects = render("dev")
    (secret,) = [o for o in objects if o["kind"] == "Secret"]
    import base64

    token = base64.b64decode(secret["data"]["magento-token"]).decode()
    sim_port, erp_port = free_port(), free_port()
    sims = [
        subprocess.Popen(
            [f"{bin_dir()}/magento-sim", "--listen", f"127.0.0.1:{sim_port}", "--token", token,
             "--orders-per-second", "0"],
            stdout=open(root / "magento-sim.log", "wb"), stderr=subprocess.STDOUT,
        ),
        subprocess.Popen(
            [f"{bin_dir()}/erp-sim", "--listen", f"127.0.0.1:{erp_port}"],
            stdout=open(root / "erp-sim.log", "wb"), stderr=subprocess.STDOUT,
        ),
    ]
    try:
        wait_http(f"http://127.0.0.1:{sim_port}/sim/stats")
        wait_http(f"http://127.0.0.1:{erp_port}/admin/stats")
        yield {
            # The dev overlay's cluster addresses and the machine's in their place.
            "kafka:9092": BOOTSTRAP,
            "http://schema-registry:8081": REGISTRY,
            "https://magento.staging.example.com": f"http://127.0.0.1:{sim_port}",
            "https://erp.staging.example.com": f"http://127.0.0.1:{erp_port}",
        }
    finally:
        for sim in sims:
            sim.terminate()
            sim.wait(timeout=30)


def test_each_service_starts_from_its_manifest_and_becomes_ready(simulators, tmp_path):
    objects = render("dev")
    (job,) = [o for o in objects if o["kind"] == "Job"]
    code, log = run_job(objects, job, tmp_path, simulators, bin_dir())
    assert code == 0, f"the topic Job failed:\n{log}"

    workloads = [o for o in objects if o["kind"] in ("StatefulSet", "Deployment")]
    assert len(workloads) == 6
    pods = [Pod(objects, w, tmp_path, simulators) for w in workloads]
    try:
        for pod in pods:
            pod.start(bin_dir())
        for pod in pods:
            pod.wait_ready(timeout=120)
        for pod in pods:
            assert pod.probe("livenessProbe") == 200, f"{pod.name} not live:\n{pod.tail()}"
            # The instance id is the pod name, as the manifest says.
            assert pod.env(bin_dir())["BRIDGE__PROCESSOR__INSTANCE_ID"] == pod.name
    finally:
        stops = {pod.name: pod.stop() for pod in pods}
    late = {name: took for name, took in stops.items() if took is None}
    assert late == {}, "killed after the termination grace"


def test_a_pod_whose_configuration_is_broken_is_never_ready(simulators, tmp_path):
    """The check can fail: the same pod with an invalid value exits and is not ready."""
    objects = render("dev")
    (sts,) = [o for o in objects if name(o) == "StatefulSet/inventory-aggregator"]
    (container,) = sts["spec"]["template"]["spec"]["containers"]
    container["env"].append({"name": "BRIDGE__PROCESSOR__COMMIT_INTERVAL_MS", "value": "1"})
    pod = Pod(objects, sts, tmp_path, simulators).start(bin_dir())
    try:
        with pytest.raises(AssertionError, match="exited"):
            pod.wait_ready(timeout=30)
    finally:
        pod.stop()
