"""A rendered pod, run as a local process: its container's command, args and environment
exactly as the manifest gives them, its volumes laid out in a folder (the ConfigMap keys
and Secret items as files, the claims and emptyDirs as empty folders), and the cluster's
addresses mapped to this machine's — the only change made to what the manifest says."""

import base64
import os
import pathlib
import re
import socket
import subprocess
import time
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pod_name(workload):
    """The name the pod would get: StatefulSet pods are <name>-0; a Deployment's get a
    replica-set hash and a random suffix."""
    if workload["kind"] == "StatefulSet":
        return f"{workload['metadata']['name']}-0"
    return f"{workload['metadata']['name']}-5d8c7b9f4-x2k7q"


class Pod:
    """One workload's pod, laid out under `root`; `addresses` maps each cluster address
    (a Service host:port, a URL prefix, a listen address) to a local one."""

    def __init__(self, objects, workload, root, addresses):
        self.workload = workload
        self.name = pod_name(workload)
        self.root = pathlib.Path(root) / self.name
        self.spec = workload["spec"]["template"]["spec"]
        (self.container,) = self.spec["containers"]
        self.addresses = dict(addresses)
        # This pod's own ports: containerPort N, listened on 0.0.0.0:N, is a free local port.
        self.ports = {}
        for port in self.container.get("ports", []):
            local = free_port()
            self.ports[port["name"]] = local
            self.addresses[f"0.0.0.0:{port['containerPort']}"] = f"127.0.0.1:{local}"
        self.mounts = {}
        by_kind = {}
        for o in objects:
            by_kind.setdefault(o["kind"], {})[o["metadata"]["name"]] = o
        self._lay_out_volumes(by_kind)
        self.process = None
        self.log_path = self.root / "log"

    def _lay_out_volumes(self, by_kind):
        volumes = {v["name"]: v for v in self.spec.get("volumes", [])}
        claims = {t["metadata"]["name"] for t in self.workload["spec"].get("volumeClaimTemplates", [])}
        for mount in self.container.get("volumeMounts", []):
            local = self.root / "volumes" / mount["name"]
            local.mkdir(parents=True, exist_ok=True)
            self.mounts[mount["mountPath"]] = local
            volume = volumes.get(mount["name"])
            if volume is None:
                assert mount["name"] in claims, f"{self.name}: no volume {mount['name']}"
                continue
            for source in volume.get("projected", {}).get("sources", []):
                ref = source.get("configMap")
                config_map = _generated(by_kind.get("ConfigMap", {}), ref["name"]) if ref else None
                if config_map is None:
                    assert ref and ref.get("optional"), f"{self.name}: no ConfigMap {ref}"
                    continue
                for key, text in config_map.get("data", {}).items():
                    (local / key).write_text(text)
            if "secret" in volume:
                secret = _generated(by_kind.get("Secret", {}), volume["secret"]["secretName"])
                assert secret is not None, f"{self.name}: no Secret {volume['secret']['secretName']}"
                for item in volume["secret"].get("items", []):
                    path = local / item["path"]
                    path.write_bytes(base64.b64decode(secret["data"][item["key"]]))
                    path.chmod(0o600)
        # What the process reads through a mounted path reads the local file instead:
        # the mounted files' own text names other mounted files (a config names its
        # secrets and state folder).
        for local in self.mounts.values():
            for path in local.rglob("*"):
                if path.is_file() and path.suffix == ".toml":
                    path.write_text(self.localise(path.read_text()))

    def localise(self, text):
        """`text` with the mount paths and cluster addresses of this pod made local, in
        one pass (a local path is never mapped again)."""
        table = {mount + "/": str(local) + "/" for mount, local in self.mounts.items()}
        table.update(self.addresses)
        pattern = "|".join(re.escape(k) for k in sorted(table, key=len, reverse=True))
        return re.sub(pattern, lambda m: table[m.group(0)], text)

    def argv(self):
        return [self.localise(a) for a in self.container.get("command", []) + self.container.get("args", [])]

    def env(self, bin_dir):
        env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(self.root)}
        for var in self.container.get("env", []):
            if "value" in var:
                env[var["name"]] = self.localise(var["value"])
            elif var.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
                env[var["name"]] = self.name
            else:
                raise AssertionError(f"{self.name}: env {var['name']} has a source the test lacks")
        return env

    def start(self, bin_dir):
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            self.argv(), env=self.env(bin_dir), cwd=self.root, stdout=log, stderr=subprocess.STDOUT
        )
        return self

    def probe(self, kind):
        """The HTTP status of the container's `kind` probe (livenessProbe, readinessProbe),
        or None when nothing answers."""
        get = self.container[kind]["httpGet"]
        port = self.ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{get['path']}", timeout=3) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited {self.process.returncode}:\n{self.tail()}")
            if self.probe("readinessProbe") == 200:
                return
            time.sleep(0.5)
        raise AssertionError(f"{self.name} not ready within {timeout} s:\n{self.tail()}")

    def stop(self):
        """SIGTERM as the kubelet sends it; the seconds the process took to exit (None when
        it outlived the pod's termination grace and was killed)."""
        if self.process is None or self.process.poll() is not None:
            return 0.0
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        started = time.monotonic()
        self.process.terminate()
        try:
            self.process.wait(timeout=grace)
            return time.monotonic() - started
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None

    def tail(self, lines=20):
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def _generated(objects, name):
    """The object named `name`, or the generated one named `name-<hash>`."""
    if name in objects:
        return objects[name]
    found = [o for n, o in objects.items() if n.rsplit("-", 1)[0] == name]
    return found[0] if found else None


def run_job(objects, job, root, addresses, bin_dir, timeout=120):
    """Runs a Job's pod to completion; its exit code and log."""
    pod = Pod(objects, job, root, addresses)
    pod.start(bin_dir)
    try:
        code = pod.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pod.process.kill()
        raise
    return code, pod.tail(50)


def bin_dir():
    return os.environ.get("BRIDGE_BIN_DIR", str(pathlib.Path(__file__).resolve().parents[2] / "target" / "debug"))
