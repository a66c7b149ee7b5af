#!/usr/bin/env python3
"""The end-to-end suite: the operator, the chart and our images on a real Kubernetes.

One scenario, two ways to get a cluster (--provider):
  local  the upstream control plane built from source and our node agent
         (scripts/k8s/cluster.sh), pods run as processes on this machine; the writer runs
         on the host and reaches the `<name>-master` Service by its ClusterIP
  kind   kind + Docker: images built with images/*/Dockerfile and loaded into kind; the
         writer is a client pod (tests/e2e/writer.sh)

Scenario: helm install the operator (2 replicas, leader election, the chart's RBAC);
`kubectl explain`; apply the seed cluster and wait for Ready; then, each under a writer
that confirms every write with WAIT 1 through the `<name>-master` Service:
  the master pod deleted; the master process crashed (DEBUG SEGFAULT, the pod stays);
  servers scaled 3 -> 5 -> 3; a rolling upgrade (image tag change); the operator's leader
  deleted in the middle of a failover.
For each: write gap, time until the master Service's EndpointSlice holds the new master
alone, acknowledged writes lost (must be 0) and time to Ready. An EndpointSlice watcher
fails the suite if the master Service ever holds two servers. Then every example of
deploy/examples reaches Ready, and deleting clusters garbage-collects what they owned.
A failure prints the operator's and the pods' logs, the events and the objects.

Env: E2E_ARTIFACTS (dir for logs), E2E_KEEP_CLUSTER=1, E2E_ONLY (comma list of steps),
     E2E_MAX_WINDOW_MS (longest accepted write gap, default 60000).
"""

import argparse
import base64
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import e2e_writes  # noqa: E402  (analysis shared with the kind suite and its simulation)

OPERATOR_NS = "redis-failover"
RELEASE = "redis-failover"
LEASE = "rf-operator-leader"
ROLE_LABEL = "redisfailover.io/role"


class Failed(Exception):
    pass


def log(msg):
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def now_ms():
    return int(time.time() * 1000)


def run(cmd, *, check=True, input=None, timeout=300, capture=True, env=None):
    proc = subprocess.run(cmd, input=input, text=True, timeout=timeout, env=env,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None)
    if check and proc.returncode != 0:
        raise Failed(f"{' '.join(cmd[:6])}... exited {proc.returncode}: {(proc.stderr or '').strip()[-800:]}")
    return proc


def kubectl(*args, check=True, input=None, timeout=120):
    return run(["kubectl", *args], check=check, input=input, timeout=timeout).stdout


def kget(*args, ns=None, check=True):
    extra = ["-n", ns] if ns else []
    out = kubectl("get", *args, *extra, "-o", "json", check=check)
    return json.loads(out) if out.strip() else None


def wait_for(what, seconds, predicate, step=1.0):
    deadline = time.time() + seconds
    last_error = None
    while True:
        try:
            value = predicate()
            if value:
                log(f"ok: {what}")
                return value
        except (Failed, subprocess.TimeoutExpired, json.JSONDecodeError, KeyError, IndexError) as e:
            last_error = e
        if time.time() >= deadline:
            raise Failed(f"timed out after {seconds}s waiting for: {what}" + (f" (last error: {last_error})" if last_error else ""))
        time.sleep(step)


# ------------------------------------------------------------------ writers


class HostWriter:
    """SET <prefix>:<i> <i> then WAIT 1 on a new connection per write, as writer.sh does,
    from this host to the Service's ClusterIP (kube-proxy translates it)."""

    def __init__(self, name, host, port, password, prefix):
        self.name, self.host, self.port, self.password, self.prefix = name, host, port, password, prefix
        self.events = []  # (datetime, "ACK"|"FAIL", i)
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)
        import redis  # redis-py (.ci/run installs it): a missing module must not read as failed writes
        self.redis = redis

    def start(self):
        self.thread.start()

    def _one(self, i):
        client = self.redis.Redis(host=self.host, port=self.port, password=self.password,
                             socket_connect_timeout=1, socket_timeout=5)
        try:
            ok = client.set(f"{self.prefix}:{i}", str(i))
            acks = client.execute_command("WAIT", 1, 2000)
            return bool(ok) and int(acks) >= 1
        finally:
            client.close()

    def _loop(self):
        i = 0
        while not self.stop_flag.is_set() and i < 100000:
            i += 1
            try:
                ok = self._one(i)
            except Exception:  # noqa: BLE001  any failure is a failed write
                ok = False
            self.events.append((dt.datetime.now(dt.timezone.utc), "ACK" if ok else "FAIL", i))
            time.sleep(0.05)

    def acks(self):
        return sum(1 for e in list(self.events) if e[1] == "ACK")

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=30)
        return sorted(self.events, key=lambda e: e[0])


class PodWriter:
    """kind: the writer runs in a client pod (tests/e2e/writer.sh with redis-cli)."""

    def __init__(self, suite, name, prefix):
        self.suite, self.name, self.prefix = suite, name, prefix

    def start(self):
        s = self.suite
        secret, key = s.password_ref()
        manifest = writer_pod_manifest(self.name, self.prefix, secret, key, s.name, s.provider.client_image)
        kubectl("-n", s.ns, "apply", "-f", "-", input=json.dumps(manifest))
        wait_for(f"writer pod {self.name} Ready", 120,
                 lambda: run(["kubectl", "-n", s.ns, "wait", "--for=condition=Ready", f"pod/{self.name}", "--timeout=5s"], check=False).returncode == 0)

    def _log(self, timestamps=False):
        args = ["-n", self.suite.ns, "logs", self.name] + (["--timestamps"] if timestamps else [])
        return kubectl(*args, check=False)

    def acks(self):
        return sum(1 for line in self._log().splitlines() if line.startswith("ACK "))

    def stop(self):
        kubectl("-n", self.suite.ns, "exec", self.name, "--", "touch", "/tmp/stop")
        wait_for(f"{self.name} stopped", 60, lambda: "STOPPED" in self._log())
        path = os.path.join(self.suite.artifacts, f"{self.name}.log")
        with open(path, "w") as f:
            f.write(self._log(timestamps=True))
        kubectl("-n", self.suite.ns, "delete", "pod", self.name, "--wait=false", check=False)
        return e2e_writes.read_events(path)


def writer_pod_manifest(pod, prefix, secret, key, cluster_name, image):
    """The kind suite's client pod: tests/e2e/writer.sh against <name>-master."""
    return {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod, "labels": {"app.kubernetes.io/name": "rf-e2e-writer"}},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "writer", "image": image, "imagePullPolicy": "IfNotPresent",
                "command": ["sh", "-c", "sh /scripts/writer.sh; exec sleep 3600"],
                "env": [{"name": "REDIS_HOST", "value": f"{cluster_name}-master"},
                        {"name": "REDIS_PORT", "value": "6379"},
                        {"name": "KEY_PREFIX", "value": prefix},
                        {"name": "STOP_FILE", "value": "/tmp/stop"},
                        {"name": "INTERVAL", "value": "0.05"},
                        {"name": "REDISCLI_AUTH", "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}],
                "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [{"name": "scripts", "mountPath": "/scripts"}],
            }],
            "volumes": [{"name": "scripts", "configMap": {"name": "rf-e2e-writer"}}],
        },
    }


# ------------------------------------------------------------------ EndpointSlice watcher


class EndpointWatch:
    """Follows the ready endpoints of one Service through a watch on its EndpointSlices;
    every change is kept with the time it was seen."""

    def __init__(self, ns, service):
        self.ns, self.service = ns, service
        self.slices = {}
        self.history = []  # (time.time(), frozenset of pod names)
        self.lock = threading.Lock()
        self.proc = None
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        self.thread.start()
        wait_for(f"watching the EndpointSlices of {self.service}", 30, lambda: self.history)

    def _loop(self):
        while not self.stopping:
            self.proc = subprocess.Popen(
                ["kubectl", "-n", self.ns, "get", "endpointslices", "-l", f"kubernetes.io/service-name={self.service}",
                 "--watch", "--output-watch-events", "-o", "json"],
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            decoder, buf = json.JSONDecoder(), ""
            for chunk in iter(lambda: self.proc.stdout.readline(), ""):
                buf += chunk
                while buf.strip():
                    try:
                        event, end = decoder.raw_decode(buf.lstrip())
                    except json.JSONDecodeError:
                        break
                    buf = buf.lstrip()[end:]
                    self._apply(event)
            self.proc.wait()

    def _apply(self, event):
        obj = event.get("object", {})
        name = obj.get("metadata", {}).get("name")
        with self.lock:
            if event.get("type") == "DELETED":
                self.slices.pop(name, None)
            else:
                ready = set()
                for ep in obj.get("endpoints") or []:
                    if (ep.get("conditions") or {}).get("ready", True) is not False:
                        ready.add((ep.get("targetRef") or {}).get("name") or ",".join(ep.get("addresses", [])))
                self.slices[name] = ready
            current = frozenset().union(*self.slices.values()) if self.slices else frozenset()
            if not self.history or self.history[-1][1] != current:
                self.history.append((time.time(), current))

    def current(self):
        with self.lock:
            return self.history[-1][1] if self.history else frozenset()

    def first_alone(self, pod, since):
        """When the Service first held `pod` alone after `since` (epoch seconds)."""
        with self.lock:
            for t, pods in self.history:
                if t >= since and pods == frozenset([pod]):
                    return t
        return None

    def doubles(self):
        with self.lock:
            return [(t, sorted(p)) for t, p in self.history if len(p) > 1]

    def stop(self):
        self.stopping = True
        if self.proc:
            self.proc.terminate()


# ------------------------------------------------------------------ providers


class LocalProvider:
    """scripts/k8s/cluster.sh: upstream control plane + our node agent on this machine."""

    name = "local"
    helm_sets = []

    def __init__(self):
        self.cluster_sh = os.path.join(REPO, "scripts", "k8s", "cluster.sh")

    def up(self):
        started = time.time()
        log("local cluster: scripts/k8s/cluster.sh up (a cold build of the binaries takes 10-15 min)")
        run(["bash", self.cluster_sh, "up"], capture=False, timeout=3 * 3600)
        env_line = run(["bash", self.cluster_sh, "env"]).stdout.strip()
        # export PATH="..." KUBECONFIG="..."
        for part in env_line.removeprefix("export ").split('" '):
            key, _, value = part.partition("=")
            value = value.strip('"').replace("$PATH", os.environ["PATH"])
            os.environ[key] = value
        return time.time() - started

    def down(self):
        run(["bash", self.cluster_sh, "down"], check=False, capture=False, timeout=300)

    def load_images(self, version, upgrade_tag):
        pass  # the node agent runs our binaries for any tag of our three images

    def writer(self, suite, name, prefix):
        host = kget("service", f"{suite.name}-master", ns=suite.ns)["spec"]["clusterIP"]
        return HostWriter(name, host, 6379, suite.password(), prefix)

    def redis(self, suite, pod_or_service, *command):
        """Runs one command against a pod (by name) or a Service (by ClusterIP)."""
        import redis
        host = self.address(suite, pod_or_service)
        client = redis.Redis(host=host, port=6379, password=suite.password(), socket_timeout=10, socket_connect_timeout=3)
        try:
            return client.execute_command(*command)
        finally:
            client.close()

    def get_many(self, suite, target, keys):
        import redis
        client = redis.Redis(host=self.address(suite, target), port=6379, password=suite.password(),
                             socket_timeout=20, decode_responses=True)
        try:
            pipe = client.pipeline(transaction=False)
            for key in keys:
                pipe.get(key)
            return pipe.execute()
        finally:
            client.close()

    def address(self, suite, target):
        svc = kget("service", target, ns=suite.ns, check=False)
        if svc and svc.get("spec", {}).get("clusterIP") not in (None, "None"):
            return svc["spec"]["clusterIP"]
        return kget("pod", target, ns=suite.ns)["status"]["podIP"]

    def pod_logs(self, ns, pod, container=None):
        args = ["-n", ns, "logs", pod, "--tail=300"] + (["-c", container] if container else ["--all-containers"])
        proc = run(["kubectl", *args], check=False)
        if proc.returncode == 0:
            return proc.stdout
        # Without the kubelet API, read the node agent's log files.
        state = os.environ.get("RF_K8S_STATE", "/tmp/rf-k8s")
        found = []
        for root, _dirs, files in os.walk(os.path.join(state, "nodes")):
            if f"{ns}_{pod}_" in root or f"/{ns}_{pod}" in root:
                for f in sorted(files):
                    if f.endswith(".log"):
                        with open(os.path.join(root, f), errors="replace") as h:
                            found.append(f"--- {os.path.join(root, f)}\n" + "".join(h.readlines()[-300:]))
        return "\n".join(found) or proc.stderr


class KindProvider:
    """kind + Docker (the GitHub workflow)."""

    name = "kind"
    helm_sets = ["image.pullPolicy=Never"]

    def __init__(self):
        self.cluster = os.environ.get("E2E_CLUSTER_NAME", "rf-e2e")
        self.client_image = os.environ.get("E2E_CLIENT_IMAGE", "redis:7.2-alpine")

    @staticmethod
    def available():
        return shutil.which("kind") and shutil.which("docker") and \
            subprocess.run(["docker", "info"], capture_output=True).returncode == 0

    def up(self):
        started = time.time()
        clusters = run(["kind", "get", "clusters"], check=False).stdout.split()
        if self.cluster not in clusters:
            run(["kind", "create", "cluster", "--name", self.cluster, "--wait", "180s"], capture=False, timeout=600)
        run(["kubectl", "config", "use-context", f"kind-{self.cluster}"])
        return time.time() - started

    def down(self):
        run(["kind", "delete", "cluster", "--name", self.cluster], check=False)

    def load_images(self, version, upgrade_tag):
        rev = run(["git", "rev-parse", "--short", "HEAD"], check=False).stdout.strip() or "unknown"
        for component in ("server", "sentinel", "operator"):
            image = f"redis-failover/rf-{component}:{version}"
            log(f"docker build {image}")
            run(["docker", "build", "-f", f"images/{component}/Dockerfile", "-t", image,
                 "--build-arg", f"VERSION={version}", "--build-arg", f"REVISION={rev}", "."],
                capture=False, timeout=3600, env=dict(os.environ, DOCKER_BUILDKIT="1"))
            run(["docker", "tag", image, f"redis-failover/rf-{component}:{upgrade_tag}"])
            run(["kind", "load", "docker-image", "--name", self.cluster, image, f"redis-failover/rf-{component}:{upgrade_tag}"], timeout=600)
        run(["docker", "pull", self.client_image], timeout=600)
        run(["kind", "load", "docker-image", "--name", self.cluster, self.client_image], timeout=600)

    def writer(self, suite, name, prefix):
        cm = kubectl("-n", suite.ns, "create", "configmap", "rf-e2e-writer", f"--from-file=writer.sh={HERE}/writer.sh",
                     "--dry-run=client", "-o", "yaml")
        kubectl("-n", suite.ns, "apply", "-f", "-", input=cm)
        return PodWriter(suite, name, prefix)

    def _client_pod(self, suite):
        pods = kget("pods", "-l", "app.kubernetes.io/name=rf-e2e-writer", ns=suite.ns)["items"]
        running = [p["metadata"]["name"] for p in pods if p["status"].get("phase") == "Running"]
        if running:
            return running[0]
        w = PodWriter(suite, "rf-e2e-client", "client")
        w.start()
        return w.name

    def redis(self, suite, target, *command):
        host = target if kget("service", target, ns=suite.ns, check=False) else \
            kget("pod", target, ns=suite.ns)["status"]["podIP"]
        out = kubectl("-n", suite.ns, "exec", self._client_pod(suite), "--", "sh", "-c",
                      f"redis-cli --no-auth-warning -a \"$REDISCLI_AUTH\" -h {host} -p 6379 " + " ".join(map(str, command)))
        return out.strip()

    def get_many(self, suite, target, keys):
        out = kubectl("-n", suite.ns, "exec", "-i", self._client_pod(suite), "--", "sh", "-c",
                      f"redis-cli --no-auth-warning -h {target} -p 6379", input="".join(f"GET {k}\n" for k in keys))
        return [None if line == "" else line for line in out.split("\n")[:len(keys)]]

    def pod_logs(self, ns, pod, container=None):
        args = ["-n", ns, "logs", pod, "--tail=300"] + (["-c", container] if container else ["--all-containers"])
        return run(["kubectl", *args], check=False).stdout


# ------------------------------------------------------------------ the suite


class Suite:
    def __init__(self, provider, artifacts, cluster_file):
        self.provider = provider
        self.artifacts = artifacts
        self.cluster_file = cluster_file
        self.results = []
        self.version = next(line.split('"')[1] for line in open(os.path.join(REPO, "Cargo.toml")) if line.startswith("version"))
        self.upgrade_tag = f"{self.version}-e2e-upgrade"
        import yaml
        doc = next(d for d in yaml.safe_load_all(open(cluster_file)) if d and d.get("kind") == "RedisFailoverCluster")
        self.name = doc["metadata"]["name"]
        self.ns = doc["metadata"].get("namespace", "default")
        self.max_window_ms = int(os.environ.get("E2E_MAX_WINDOW_MS", "60000"))
        self.watch = None
        self._password = None

    # -- cluster facts
    def server_selector(self, name=None):
        return f"app.kubernetes.io/instance={name or self.name},app.kubernetes.io/component=server"

    def master_pods(self):
        pods = kget("pods", "-l", f"{self.server_selector()},{ROLE_LABEL}=master", ns=self.ns)["items"]
        return [p["metadata"]["name"] for p in pods]

    def rfc(self, name=None, ns=None):
        return kget("rfc", name or self.name, ns=ns or self.ns)

    def ready(self, servers=None, name=None, ns=None):
        status = self.rfc(name, ns).get("status", {})
        cond = next((c for c in status.get("conditions", []) if c["type"] == "Ready"), {})
        return cond.get("status") == "True" and (servers is None or status.get("readyServers") == servers)

    def password_ref(self):
        ref = (self.rfc().get("spec", {}).get("auth") or {}).get("secretRef") or {}
        return ref.get("name") or f"{self.name}-auth", ref.get("key") or "password"

    def password(self):
        if self._password is None:
            secret, key = self.password_ref()
            data = kget("secret", secret, ns=self.ns)["data"][key]
            self._password = base64.b64decode(data).decode()
        return self._password

    def record(self, text):
        log(text)
        self.results.append(text)

    # -- steps
    def install_operator(self):
        log("helm install the operator (2 replicas, leader election, the chart's RBAC)")
        sets = [f"image.tag={self.version}"] + self.provider.helm_sets
        args = ["helm", "upgrade", "--install", RELEASE, os.path.join(REPO, "charts", "redis-failover"),
                "--namespace", OPERATOR_NS, "--create-namespace", "--wait", "--timeout", "5m"]
        for s in sets:
            args += ["--set", s]
        started = time.time()
        run(args, timeout=400)
        wait_for("operator Deployment has 2 ready replicas", 180,
                 lambda: kget("deploy", RELEASE, ns=OPERATOR_NS)["status"].get("readyReplicas") == 2)
        holder = wait_for("one operator holds the leader Lease", 120,
                          lambda: kget("lease", LEASE, ns=OPERATOR_NS)["spec"].get("holderIdentity"))
        pods = kget("pods", "-l", "app.kubernetes.io/component=operator", ns=OPERATOR_NS)["items"]
        sa = {p["spec"].get("serviceAccountName") for p in pods}
        if sa == {"default"} or not sa:
            raise Failed(f"operator pods run as {sa}, not the chart's ServiceAccount")
        self.record(f"operator installed in {time.time() - started:.1f}s; leader {holder}; service account {sorted(sa)}")

    def explain_and_columns(self):
        out = kubectl("explain", "rfc.spec")
        for field in ("redis", "sentinel", "persistence"):
            if field not in out:
                raise Failed(f"kubectl explain rfc.spec does not describe {field}")
        log("ok: kubectl explain rfc.spec")

    def create_seed(self):
        log(f"apply {os.path.relpath(self.cluster_file, REPO)} ({self.ns}/{self.name})")
        started = time.time()
        kubectl("apply", "-f", self.cluster_file)
        run(["kubectl", "-n", self.ns, "wait", "--for=condition=Ready", f"rfc/{self.name}", "--timeout=300s"], timeout=320)
        self.record(f"seed cluster Ready {time.time() - started:.1f}s after apply")
        header = kubectl("-n", self.ns, "get", "rfc").splitlines()[0].split()
        for column in ("NAME", "MASTER", "READY", "REPLICAS", "SENTINELS", "AGE"):
            if column not in header:
                raise Failed(f"`kubectl get rfc` lacks the {column} column: {header}")
        log(f"ok: kubectl get rfc columns {header}")
        for kind, name in (("statefulset", "server"), ("statefulset", "sentinel"), ("service", "master"),
                           ("service", "replicas"), ("service", "sentinel"), ("service", "server-headless"),
                           ("service", "sentinel-headless"), ("configmap", "server-config"),
                           ("configmap", "sentinel-config"), ("poddisruptionbudget", "server"),
                           ("poddisruptionbudget", "sentinel")):
            kget(kind, f"{self.name}-{name}", ns=self.ns)
        masters = self.master_pods()
        if len(masters) != 1:
            raise Failed(f"expected one master pod, got {masters}")
        self.watch = EndpointWatch(self.ns, f"{self.name}-master")
        self.watch.start()
        wait_for("the master Service holds the master pod alone", 60, lambda: self.watch.current() == frozenset(masters))
        log(f"ok: master {masters[0]} alone behind {self.name}-master")

    def restart_count(self, pod):
        statuses = kget("pod", pod, ns=self.ns)["status"].get("containerStatuses") or []
        return sum(s.get("restartCount", 0) for s in statuses)

    def disruption(self, label, prefix, disrupt, expect_new_master=True, settle_servers=3, settle=None):
        """Runs a writer, applies `disrupt(old_master)`, waits for `settle()` if given,
        measures, checks no acked write lost."""
        writer = self.provider.writer(self, f"writer-{prefix}", prefix)
        writer.start()
        wait_for(f"{label}: 30 acknowledged writes before", 120, lambda: writer.acks() >= 30)
        old = self.master_pods()[0]
        t0 = time.time()
        disrupted_at = dt.datetime.now(dt.timezone.utc)
        disrupt(old)
        if settle:
            settle()
        new = None
        switch_ms = None
        if expect_new_master:
            def moved():
                cur = self.watch.current()
                return len(cur) == 1 and old not in cur and next(iter(cur))
            new = wait_for(f"{label}: {self.name}-master holds a new master alone", 240, moved, step=0.2)
            switch_ms = round((self.watch.first_alone(new, t0) - t0) * 1000)
        base = writer.acks()
        wait_for(f"{label}: 30 acknowledged writes after", 180, lambda: writer.acks() >= base + 30)
        events = writer.stop()
        self.save_events(prefix, events, disrupted_at)
        summary, acked = e2e_writes.analyze(events, disrupted_at, prefix)
        wait_for(f"{label}: cluster Ready with {settle_servers} servers", 300,
                 lambda: self.ready(settle_servers), step=2)
        ready_ms = round((time.time() - t0) * 1000)
        lost = self.lost_writes(prefix, acked)
        self.acked.append((prefix, acked))
        masters = self.master_pods()
        if len(masters) != 1 or self.watch.current() != frozenset(masters):
            raise Failed(f"{label}: master label {masters} vs Service endpoints {sorted(self.watch.current())}")
        gap = self.ack_gap_ms(events, disrupted_at)
        self.record(f"{label}: write gap {gap} ms, master Service switch "
                    f"{'-' if switch_ms is None else f'{switch_ms} ms'} ({old} -> {new or masters[0]}), "
                    f"acked writes {summary['acked']}, lost {lost}, Ready after {ready_ms} ms")
        if gap is None or gap > self.max_window_ms:
            raise Failed(f"{label}: writes did not recover within {self.max_window_ms} ms ({summary})")
        if lost:
            raise Failed(f"{label}: {lost} acknowledged writes lost")
        return old, new

    @staticmethod
    def ack_gap_ms(events, disrupted_at):
        """The longest time without an acknowledged write, from the last ACK before the
        disruption on (a write blocked for seconds is a gap even if it ends acknowledged)."""
        acks = [t for t, kind, _ in events if kind == "ACK"]
        before = [t for t in acks if t < disrupted_at]
        after = [t for t in acks if t >= disrupted_at]
        if not after:
            return None
        points = before[-1:] + after
        return round(max(((b - a).total_seconds() for a, b in zip(points, points[1:])), default=0) * 1000)

    def save_events(self, prefix, events, disrupted_at):
        with open(os.path.join(self.artifacts, f"writer-{prefix}.events"), "w") as f:
            f.write(f"{disrupted_at.isoformat()} DISRUPTED\n")
            for t, kind, i in events:
                f.write(f"{t.isoformat()} {kind} {i}\n")

    def lost_writes(self, prefix, acked, target=None):
        keys = [f"{prefix}:{i}" for i in acked]
        for attempt in range(5):
            values = self.provider.get_many(self, target or f"{self.name}-master", keys)
            lost = sum(1 for i, v in zip(acked, values) if v != str(i))
            if lost == 0:
                return 0
            time.sleep(3)
        return lost

    def check_all_acked(self, target):
        for prefix, acked in self.acked:
            lost = self.lost_writes(prefix, acked, target)
            if lost:
                raise Failed(f"{lost} acknowledged writes of '{prefix}' missing on {target}")

    def step_delete_master(self):
        old, _ = self.disruption("master pod deleted", "delete",
                                 lambda pod: kubectl("-n", self.ns, "delete", "pod", pod, "--wait=false"))
        wait_for(f"{old} back as a replica", 180,
                 lambda: kget("pod", old, ns=self.ns)["metadata"]["labels"].get(ROLE_LABEL) == "replica")

    def step_crash_master(self):
        restarts = {}

        def crash(pod):
            restarts[pod] = self.restart_count(pod)
            try:
                self.provider.redis(self, pod, "DEBUG", "SEGFAULT")
            except Exception:  # noqa: BLE001  the connection dies with the process
                pass
        old, _ = self.disruption("master process crashed", "crash", crash)
        wait_for(f"{old} restarted in place", 120, lambda: self.restart_count(old) > restarts[old])
        wait_for(f"{old} back as a replica", 180,
                 lambda: kget("pod", old, ns=self.ns)["metadata"]["labels"].get(ROLE_LABEL) == "replica")

    def step_scale(self):
        log("scale servers 3 -> 5 -> 3")
        kubectl("-n", self.ns, "patch", "rfc", self.name, "--type", "merge", "-p", '{"spec":{"redis":{"replicas":5}}}')
        wait_for("5 ready servers", 300, lambda: self.ready(5), step=2)
        self.check_all_acked(f"{self.name}-server-4")
        kubectl("-n", self.ns, "patch", "rfc", self.name, "--type", "merge", "-p", '{"spec":{"redis":{"replicas":3}}}')
        wait_for("3 ready servers", 300, lambda: self.ready(3) and
                 kget("sts", f"{self.name}-server", ns=self.ns)["status"].get("replicas") == 3, step=2)
        self.check_all_acked(f"{self.name}-master")
        self.record("scaled servers 3 -> 5 -> 3: the new replica had every acknowledged write")

    def step_upgrade(self):
        tag = self.upgrade_tag
        patch = {"spec": {"redis": {"image": f"redis-failover/rf-server:{tag}"},
                          "sentinel": {"image": f"redis-failover/rf-sentinel:{tag}"},
                          "metrics": {"enabled": True, "image": f"redis-failover/rf-operator:{tag}"}}}

        def upgrade(_old):
            kubectl("-n", self.ns, "patch", "rfc", self.name, "--type", "merge", "-p", json.dumps(patch))

        def all_upgraded():
            pods = kget("pods", "-l", f"app.kubernetes.io/instance={self.name}", ns=self.ns)["items"]
            images = {c["image"] for p in pods for c in p["spec"]["containers"]}
            return len(pods) == 6 and all(i.endswith(":" + tag) for i in images) and \
                all(p["status"].get("phase") == "Running" for p in pods)

        def settle():
            wait_for(f"every server and sentinel pod runs {tag}", 600, all_upgraded, step=2)
            wait_for("cluster Ready after the upgrade", 300, lambda: self.ready(3), step=2)

        self.disruption("rolling upgrade under load", "upgrade", upgrade, expect_new_master=False, settle=settle)
        self.check_all_acked(f"{self.name}-master")

        def metrics_served():
            master = self.master_pods()[0]
            body = kubectl("get", "--raw", f"/api/v1/namespaces/{self.ns}/pods/{master}:9121/proxy/metrics")
            return "redis_up 1" in body and "rf_exporter_is_master 1" in body
        wait_for("the master's metrics sidecar serves redis_up 1 (through the API server's pod proxy)", 120, metrics_served)

    def step_leader_loss(self):
        state = {}

        def disrupt(master):
            holder = kget("lease", LEASE, ns=OPERATOR_NS)["spec"]["holderIdentity"]
            state["old_leader"] = holder
            leader_pod = holder.split("_")[0] if "_" in holder else holder
            kubectl("-n", self.ns, "delete", "pod", master, "--wait=false")
            time.sleep(0.5)
            kubectl("-n", OPERATOR_NS, "delete", "pod", leader_pod, "--wait=false")
            state["leader_pod"] = leader_pod

        self.disruption("operator leader deleted during a failover", "leader", disrupt)
        new_holder = wait_for("another operator holds the Lease", 120,
                              lambda: (h := kget("lease", LEASE, ns=OPERATOR_NS)["spec"].get("holderIdentity")) and
                              h != state["old_leader"] and h)
        self.record(f"operator leader {state['leader_pod']} deleted mid-failover; new leader {new_holder}")

    def step_examples(self):
        examples_dir = os.path.join(REPO, "deploy", "examples")
        import yaml
        for file in sorted(os.listdir(examples_dir)):
            path = os.path.join(examples_dir, file)
            if path == self.cluster_file or not file.endswith(".yaml"):
                continue
            docs = [d for d in yaml.safe_load_all(open(path)) if d]
            rfc = next(d for d in docs if d["kind"] == "RedisFailoverCluster")
            name, ns = rfc["metadata"]["name"], rfc["metadata"].get("namespace", "default")
            started = time.time()
            kubectl("apply", "-f", path)
            wait_for(f"example {file}: {ns}/{name} Ready", 300, lambda: self.ready(None, name, ns), step=2)
            ready_s = time.time() - started
            persistence = (rfc["spec"].get("persistence") or {})
            keep = persistence.get("keepOnDelete", False) and persistence.get("mode", "None") != "None"
            pvcs_before = [p["metadata"]["name"] for p in
                           kget("pvc", "-l", f"app.kubernetes.io/instance={name}", ns=ns)["items"]]
            kubectl("-n", ns, "delete", "rfc", name, "--timeout=120s")
            self.wait_owned_gone(name, ns)
            pvcs_after = [p["metadata"]["name"] for p in
                          kget("pvc", "-l", f"app.kubernetes.io/instance={name}", ns=ns)["items"]]
            if keep and sorted(pvcs_after) != sorted(pvcs_before):
                raise Failed(f"{file}: keepOnDelete but PVCs {pvcs_before} became {pvcs_after}")
            if not keep and pvcs_after:
                wait_for(f"{file}: PVCs deleted", 120, lambda: not kget(
                    "pvc", "-l", f"app.kubernetes.io/instance={name}", ns=ns)["items"])
            for d in docs:
                if d["kind"] != "RedisFailoverCluster":
                    kubectl("-n", d["metadata"].get("namespace", ns), "delete", d["kind"].lower(), d["metadata"]["name"], check=False)
            if keep:
                kubectl("-n", ns, "delete", "pvc", *pvcs_after, check=False)
            self.record(f"example {file}: Ready after {ready_s:.1f}s; deleted, owned objects gone"
                        f"{', PVCs kept' if keep else ''}{f' ({len(pvcs_before)} PVCs)' if pvcs_before else ''}")

    def wait_owned_gone(self, name, ns):
        def gone():
            out = kubectl("-n", ns, "get", "statefulsets,services,configmaps,poddisruptionbudgets,secrets,pods",
                          "-l", f"app.kubernetes.io/instance={name}", "-o", "name")
            return not out.strip()
        wait_for(f"every object owned by {ns}/{name} is gone", 180, gone, step=2)

    def step_delete_seed(self):
        kubectl("-n", self.ns, "delete", "rfc", self.name, "--timeout=120s")
        self.wait_owned_gone(self.name, self.ns)
        self.record("seed cluster deleted: owned objects garbage-collected")

    def check_rbac(self):
        for pod in kget("pods", "-l", "app.kubernetes.io/component=operator", ns=OPERATOR_NS)["items"]:
            text = self.provider.pod_logs(OPERATOR_NS, pod["metadata"]["name"])
            if "forbidden" in text.lower():
                line = next(line for line in text.splitlines() if "forbidden" in line.lower())
                raise Failed(f"operator {pod['metadata']['name']} logged an RBAC refusal: {line[:300]}")
        log("ok: no 'forbidden' in the operator logs (the chart's RBAC is enough)")

    def diagnostics(self):
        log(f"diagnostics (also in {self.artifacts})")
        with open(os.path.join(self.artifacts, "cluster-state.txt"), "w") as f:
            for args in (["get", "rfc,statefulsets,services,endpointslices,pods,pvc,pdb,leases", "-A", "-o", "wide"],
                         ["-n", self.ns, "describe", "rfc"], ["get", "events", "-A", "--sort-by=.lastTimestamp"],
                         ["get", "nodes", "-o", "wide"]):
                f.write(f"$ kubectl {' '.join(args)}\n{run(['kubectl', *args], check=False).stdout}\n")
        for ns in (OPERATOR_NS, self.ns):
            pods = kget("pods", ns=ns, check=False) or {"items": []}
            for pod in pods["items"]:
                name = pod["metadata"]["name"]
                with open(os.path.join(self.artifacts, f"{ns}_{name}.log"), "w") as f:
                    f.write(self.provider.pod_logs(ns, name))
        if self.watch:
            with open(os.path.join(self.artifacts, "master-endpoints.txt"), "w") as f:
                for t, pods in self.watch.history:
                    f.write(f"{dt.datetime.fromtimestamp(t).isoformat()} {sorted(pods)}\n")
        for name in sorted(os.listdir(self.artifacts)):
            path = os.path.join(self.artifacts, name)
            print(f"===== {name} (last 80 lines)")
            with open(path, errors="replace") as f:
                print("".join(f.readlines()[-80:]))

    def demo(self, hold):
        """The README's main job: the seed cluster on Kubernetes and one failover drill."""
        self.acked = []
        self.install_operator()
        self.create_seed()
        self.step_delete_master()
        print("\nThe seed topology runs on Kubernetes:")
        print(kubectl("-n", self.ns, "get", "rfc,pods,svc", "-o", "wide"))
        if hold:
            print(f"export PATH={os.environ['PATH'].split(':')[0]}:$PATH KUBECONFIG={os.environ.get('KUBECONFIG', '')}")
            print(f"writes: {self.name}-master:6379 ({kget('service', self.name + '-master', ns=self.ns)['spec']['clusterIP']}), "
                  f"sentinels: {self.name}-sentinel:26379, password in Secret {self.password_ref()[0]}")
            print("Ctrl-C stops the demo and tears the cluster down.")
            while True:
                time.sleep(3600)

    def run(self, only):
        self.acked = []
        steps = [("operator", self.install_operator), ("explain", self.explain_and_columns),
                 ("seed", self.create_seed), ("delete-master", self.step_delete_master),
                 ("crash-master", self.step_crash_master), ("scale", self.step_scale),
                 ("upgrade", self.step_upgrade), ("leader-loss", self.step_leader_loss),
                 ("rbac", self.check_rbac), ("examples", self.step_examples),
                 ("delete", self.step_delete_seed)]
        self.passed = 0
        for name, step in steps:
            if only and name not in only and name not in ("operator", "seed"):
                continue
            step_started = time.time()
            step()
            self.passed += 1
            log(f"step {name} done in {time.time() - step_started:.1f}s")
        if self.watch:
            doubles = self.watch.doubles()
            self.watch.stop()
            if doubles:
                raise Failed(f"the master Service held two servers at once: {doubles[:3]}")
            self.record(f"master Service never held two servers ({len(self.watch.history)} endpoint changes observed)")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider", choices=["local", "kind"], default="local")
    parser.add_argument("--cluster-file", default=os.path.join(REPO, "deploy", "examples", "cluster.yaml"))
    parser.add_argument("--demo", action="store_true",
                        help="the README's main job: operator + seed cluster + one failover drill, then hold until Ctrl-C")
    parser.add_argument("--exit-after-drill", action="store_true", help="with --demo: tear down after the drill")
    parser.add_argument("--print-writer-pod", action="store_true",
                        help="print the kind writer pod manifest (YAML) and exit; validated offline")
    args = parser.parse_args()
    if args.print_writer_pod:
        import yaml
        print(yaml.safe_dump(writer_pod_manifest("writer-example", "example", "seed-auth", "password", "seed",
                                                 KindProvider().client_image), sort_keys=False))
        return 0
    os.chdir(REPO)
    provider = LocalProvider() if args.provider == "local" else KindProvider()
    artifacts = os.environ.get("E2E_ARTIFACTS") or tempfile.mkdtemp(prefix="rf-e2e-")
    os.makedirs(artifacts, exist_ok=True)
    only = [s for s in os.environ.get("E2E_ONLY", "").split(",") if s]
    suite = Suite(provider, artifacts, os.path.abspath(args.cluster_file))
    started = time.time()
    ok = False
    try:
        up_s = provider.up()
        log(f"cluster up in {up_s:.0f}s ({provider.name})")
        provider.load_images(suite.version, suite.upgrade_tag)
        if args.demo:
            suite.demo(hold=not args.exit_after_drill)
        else:
            suite.run(only)
        ok = True
    except KeyboardInterrupt:
        log("interrupted: tearing down")
        ok = args.demo
    except (Failed, subprocess.TimeoutExpired, OSError) as e:
        log(f"FAILED: {e}")
        try:
            suite.diagnostics()
        except Exception as d:  # noqa: BLE001
            log(f"diagnostics failed too: {d}")
    finally:
        if suite.watch:
            suite.watch.stop()
        if os.environ.get("E2E_KEEP_CLUSTER") != "1":
            provider.down()
    print("\ne2e results:")
    for line in suite.results:
        print(f"  {line}")
    what = "main job (demo)" if args.demo else "e2e"
    print(f"{what} ({provider.name}) {'passed' if ok else 'FAILED'} in {time.time() - started:.0f}s")
    if not args.demo:
        print(f"e2e: {getattr(suite, 'passed', 0)} passed, {0 if ok else 1} failed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
