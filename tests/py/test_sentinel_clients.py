"""Sentinel-aware Python clients (redis-py) against rf-sentinel: discovery, master_for /
slave_for, and following a failover. Real processes on 127.0.0.1, free ports.

RF_SERVER_BIN / RF_SENTINEL_BIN choose the binaries (default: our debug builds)."""

import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import redis
from redis.sentinel import Sentinel

ROOT = Path(__file__).resolve().parents[2]
SERVER_BIN = os.environ.get("RF_SERVER_BIN", str(ROOT / "target/debug/rf-server"))
SENTINEL_BIN = os.environ.get("RF_SENTINEL_BIN", str(ROOT / "target/debug/rf-sentinel"))


_given_ports = set()


def free_port():
    """A bindable port below the kernel's ephemeral range (so no outgoing connection can be
    holding it when our server binds), never handed out twice in this run."""
    rng = random.Random(os.getpid() ^ time.time_ns())
    while True:
        port = rng.randrange(20000, 32000)
        if port in _given_ports:
            continue
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given_ports.add(port)
        return port


def wait_for(predicate, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (redis.RedisError, OSError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


class Group:
    """1 master + 2 replicas + 3 sentinels (quorum 2, down-after 1000 ms)."""

    def __init__(self, tmp):
        self.tmp = Path(tmp)
        self.procs = {}
        self.server_ports = [free_port() for _ in range(3)]
        self.sentinel_ports = [free_port() for _ in range(3)]
        master = self.server_ports[0]
        for i, port in enumerate(self.server_ports):
            d = self.tmp / f"s{port}"
            d.mkdir()
            lines = [f"port {port}", "bind 127.0.0.1", f'dir "{d}"', 'save ""']
            if i > 0:
                lines.append(f"replicaof 127.0.0.1 {master}")
            (d / "redis.conf").write_text("\n".join(lines) + "\n")
            self.start_server(port)
        for port in self.sentinel_ports:
            d = self.tmp / f"x{port}"
            d.mkdir()
            (d / "sentinel.conf").write_text(
                f"port {port}\nbind 127.0.0.1\ndir \"{d}\"\n"
                f"sentinel monitor mymaster 127.0.0.1 {master} 2\n"
                "sentinel down-after-milliseconds mymaster 1000\n"
                "sentinel failover-timeout mymaster 10000\n"
                "sentinel parallel-syncs mymaster 1\n"
            )
            self.procs[port] = subprocess.Popen(
                [SENTINEL_BIN, str(d / "sentinel.conf")],
                stdout=open(d / "log", "w"), stderr=subprocess.STDOUT,
            )
        for port in self.server_ports + self.sentinel_ports:
            wait_for(lambda p=port: redis.Redis(port=p, socket_timeout=0.5).ping(), 10, f"PING on {port}")

    def start_server(self, port):
        d = self.tmp / f"s{port}"
        self.procs[port] = subprocess.Popen(
            [SERVER_BIN, str(d / "redis.conf")],
            stdout=open(d / "log", "a"), stderr=subprocess.STDOUT,
        )

    def kill(self, port):
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait(timeout=10)

    def close(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)


@pytest.fixture
def group():
    with tempfile.TemporaryDirectory() as tmp:
        g = Group(tmp)
        try:
            yield g
        finally:
            g.close()


def replicas_online(client, count):
    """True once the master lists `count` replicas in state online: a replica still in its
    full sync (state wait_bgsave, e.g. during repl-diskless-sync-delay) cannot ack WAIT yet."""
    info = client.info("replication")
    slaves = [v for k, v in info.items() if re.fullmatch(r"slave\d+", k)]
    return len([s for s in slaves if s.get("state") == "online"]) == count


def sentinel_client(group):
    return Sentinel([("127.0.0.1", p) for p in group.sentinel_ports], socket_timeout=0.5)


def test_discovery_and_master_for(group):
    s = sentinel_client(group)
    assert s.discover_master("mymaster") == ("127.0.0.1", group.server_ports[0])
    replicas = wait_for(lambda: sorted(s.discover_slaves("mymaster")) if len(s.discover_slaves("mymaster")) == 2 else None,
                        20, "two replicas discovered")
    assert replicas == sorted(("127.0.0.1", p) for p in group.server_ports[1:])
    master = s.master_for("mymaster", socket_timeout=3)
    wait_for(lambda: replicas_online(master, 2), 20, "both replicas online")
    assert master.set("greeting", "hello")
    assert master.wait(1, 2000) >= 1
    replica = s.slave_for("mymaster", socket_timeout=1)
    assert wait_for(lambda: replica.get("greeting") == b"hello", 10, "replica read")
    with pytest.raises(redis.exceptions.ReadOnlyError):
        replica.set("x", "y")


def test_master_for_follows_a_failover(group):
    s = sentinel_client(group)
    master = s.master_for("mymaster", socket_timeout=3)
    wait_for(lambda: replicas_online(master, 2), 20, "both replicas online")
    wait_for(lambda: len(s.discover_slaves("mymaster")) == 2, 20, "sentinels see both replicas")
    acked = []
    for i in range(200):
        master.set(f"k{i}", i)
        if master.wait(1, 1000) >= 1:
            acked.append(i)
    old = group.server_ports[0]
    group.kill(old)
    new = wait_for(lambda: s.discover_master("mymaster")[1] != old and s.discover_master("mymaster"), 30, "failover")
    assert new[1] in group.server_ports[1:]
    # The same client object now writes to the new master.
    wait_for(lambda: master.set("after", "failover"), 15, "write after failover")
    assert master.get("after") == b"failover"
    values = master.mget([f"k{i}" for i in acked])
    assert [int(v) for v in values] == acked, "acknowledged writes lost"


def test_acl_user_on_the_sentinel_with_redis_py():
    """A sentinel whose default user is locked (requirepass) and whose clients log in as an
    ACL user: redis-py's Sentinel(sentinel_kwargs={username, password})."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        mport, sport = free_port(), free_port()
        procs = []
        try:
            procs.append(subprocess.Popen([SERVER_BIN, "--port", str(mport), "--bind", "127.0.0.1", "--save", "", "--dir", str(tmp)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            conf = tmp / "sentinel.conf"
            conf.write_text(
                f"port {sport}\nbind 127.0.0.1\ndir \"{tmp}\"\nrequirepass locked-default\n"
                "user app on >apppass +@all\n"
                f"sentinel monitor mymaster 127.0.0.1 {mport} 1\n"
            )
            procs.append(subprocess.Popen([SENTINEL_BIN, str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_for(lambda: redis.Redis(port=mport, socket_timeout=0.5).ping(), 10, "server")
            app = redis.Redis(port=sport, username="app", password="apppass", socket_timeout=0.5)
            assert wait_for(lambda: app.acl_whoami(), 10, "sentinel login as app") == "app"
            s = Sentinel([("127.0.0.1", sport)], socket_timeout=0.5,
                         sentinel_kwargs={"username": "app", "password": "apppass"})
            assert s.discover_master("mymaster") == ("127.0.0.1", mport)
            with pytest.raises(redis.exceptions.AuthenticationError):
                redis.Redis(port=sport, username="app", password="wrong", socket_timeout=0.5).ping()
            with pytest.raises(redis.exceptions.AuthenticationError):
                redis.Redis(port=sport, socket_timeout=0.5).ping()
            # RESP3 clients authenticate through HELLO 3 AUTH
            r3 = redis.Redis(port=sport, username="app", password="apppass", protocol=3, socket_timeout=0.5)
            assert r3.ping()
            # redis-py decodes WHOAMI only over RESP2 (Debian's sentinel gives the same bytes)
            assert r3.acl_whoami() == b"app"
        finally:
            for p in procs:
                p.kill()
                p.wait(timeout=10)
