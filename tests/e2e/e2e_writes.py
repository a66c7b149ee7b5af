#!/usr/bin/env python3
"""Write-availability bookkeeping for the e2e suite (standard library only).

  stamp                      prefix every stdin line with an RFC 3339 UTC timestamp
                             (the same form as `kubectl logs --timestamps`)
  analyze LOG --disrupted-at TS [--acked-out F] [--max-window-ms N]
                             from a timestamped writer.sh log: acknowledged writes, failed
                             writes, and the write-failure window around the disruption;
                             prints one JSON line; exits 1 when writes never recovered or
                             the window is longer than --max-window-ms
  get-commands ACKED         print `GET <key>` for every acknowledged write
  readback ACKED REPLIES     compare redis-cli replies to those GETs; exits 1 if any
                             acknowledged write is missing or wrong
  simulate                   run the whole measure/failover/readback logic locally against
                             real servers on 127.0.0.1 (a master, a replica, a TCP proxy in
                             place of the `<name>-master` Service); prints PASS/FAIL lines
                             and `RESULT passed=N failed=M skipped=K`
"""

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

LINE = re.compile(r"^(\S+)\s+(ACK|FAIL|START|STOPPED)\b\s*(\S*)")


def now_rfc3339():
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text):
    """RFC 3339 with up to nanoseconds (kubectl prints 9 digits) -> aware datetime."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$", text)
    if not match:
        raise ValueError(f"bad timestamp {text!r}")
    base, frac, zone = match.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    zone = "+00:00" if zone == "Z" else zone
    return dt.datetime.fromisoformat(f"{base}.{micros:06d}{zone}")


def read_events(path):
    events = []
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            match = LINE.match(raw.strip())
            if not match:
                continue
            stamp, kind, index = match.groups()
            if kind in ("ACK", "FAIL"):
                events.append((parse_ts(stamp), kind, int(index)))
    events.sort(key=lambda e: e[0])
    return events


def analyze(events, disrupted_at, prefix):
    acked = [i for _, kind, i in events if kind == "ACK"]
    after = [e for e in events if e[0] >= disrupted_at]
    failures = [e for e in after if e[1] == "FAIL"]
    summary = {
        "acked": len(acked),
        "failed": sum(1 for e in events if e[1] == "FAIL"),
        "failed_after_disruption": len(failures),
        "acked_after_disruption": sum(1 for e in after if e[1] == "ACK"),
        "prefix": prefix,
    }
    if failures:
        first_fail, last_fail = failures[0][0], failures[-1][0]
        before = [e[0] for e in events if e[1] == "ACK" and e[0] < first_fail]
        start = before[-1] if before else disrupted_at
        recovered = [e[0] for e in events if e[1] == "ACK" and e[0] > last_fail]
    else:
        before = [e[0] for e in events if e[1] == "ACK" and e[0] < disrupted_at]
        start = before[-1] if before else disrupted_at
        recovered = [e[0] for e in after if e[1] == "ACK"]
    if recovered:
        end = recovered[0]
        summary["write_failure_window_ms"] = round((end - start).total_seconds() * 1000)
        summary["recovered_after_disruption_ms"] = round((end - disrupted_at).total_seconds() * 1000)
    else:
        summary["write_failure_window_ms"] = None
        summary["recovered_after_disruption_ms"] = None
    return summary, acked


def cmd_stamp(_args):
    for line in sys.stdin:
        sys.stdout.write(f"{now_rfc3339()} {line}")
        sys.stdout.flush()
    return 0


def cmd_analyze(args):
    events = read_events(args.log)
    summary, acked = analyze(events, parse_ts(args.disrupted_at), args.prefix)
    print(json.dumps(summary, sort_keys=True))
    if args.acked_out:
        with open(args.acked_out, "w", encoding="utf-8") as handle:
            handle.writelines(f"{args.prefix}:{i} {i}\n" for i in acked)
    if summary["write_failure_window_ms"] is None:
        print("writes did not recover after the disruption", file=sys.stderr)
        return 1
    if args.max_window_ms and summary["write_failure_window_ms"] > args.max_window_ms:
        print(f"write failure window {summary['write_failure_window_ms']} ms > {args.max_window_ms} ms",
              file=sys.stderr)
        return 1
    return 0


def load_acked(path):
    with open(path, encoding="utf-8") as handle:
        return [tuple(line.split()) for line in handle if line.strip()]


def cmd_get_commands(args):
    for key, _ in load_acked(args.acked):
        print(f"GET {key}")
    return 0


def readback_errors(acked, replies):
    errors = []
    if len(replies) != len(acked):
        errors.append(f"{len(replies)} replies for {len(acked)} GETs")
    for (key, value), reply in zip(acked, replies):
        if reply != value:
            errors.append(f"{key}: expected {value!r}, got {reply!r}")
    return errors


def cmd_readback(args):
    acked = load_acked(args.acked)
    with open(args.replies, encoding="utf-8") as handle:
        replies = [line.rstrip("\n") for line in handle]
    errors = readback_errors(acked, replies)
    if errors:
        print(f"LOST or wrong acknowledged writes: {len(errors)}; first: {errors[:5]}")
        return 1
    print(f"all {len(acked)} acknowledged writes read back")
    return 0


# ------------------------------------------------------------------ local simulation

def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proxy:
    """TCP forwarder standing in for the `<name>-master` Service: `retarget` moves its
    endpoint, as the operator moving the role label moves the Service's endpoints."""

    def __init__(self):
        self.port = free_port()
        self.target = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.server = None
        self.started = threading.Event()

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self.started.set()
        self.loop.run_forever()

    async def _handle(self, reader, writer):
        target = self.target
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", target), timeout=2)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return

        async def pump(src, dst):
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))

    def start(self, target):
        self.target = target
        self.thread.start()
        self.started.wait(5)

    def retarget(self, target):
        self.target = target

    def stop(self):
        def shutdown():
            self.server.close()
            self.loop.stop()
        self.loop.call_soon_threadsafe(shutdown)
        self.thread.join(5)


class Processes:
    """Kills every process it started, whatever happens (context manager)."""

    def __init__(self):
        self.procs = []

    def __enter__(self):
        return self

    def spawn(self, args, **kwargs):
        proc = subprocess.Popen(args, **kwargs)
        self.procs.append(proc)
        return proc

    def __exit__(self, *exc):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        return False


def cli(cli_bin, port, *command, timeout=5):
    result = subprocess.run([cli_bin, "-h", "127.0.0.1", "-p", str(port), *command],
                            capture_output=True, text=True, timeout=timeout)
    return result.stdout.strip()


def wait_until(predicate, seconds, step=0.1):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (subprocess.SubprocessError, OSError):
            pass
        time.sleep(step)
    return False


def start_server(procs, server_bin, workdir, port, replica_of=None):
    data_dir = os.path.join(workdir, str(port))
    os.makedirs(data_dir, exist_ok=True)
    args = [server_bin, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", data_dir, "--daemonize", "no",
            # start a full sync at once (Redis 7 waits 5 s by default to batch replicas)
            "--repl-diskless-sync-delay", "0"]
    if replica_of:
        args += ["--replicaof", "127.0.0.1", str(replica_of)]
    return procs.spawn(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def count(log_path, kind, since=None):
    try:
        events = read_events(log_path)
    except FileNotFoundError:
        return 0
    return sum(1 for t, k, _ in events if k == kind and (since is None or t >= since))


def cmd_simulate(args):
    results = {"passed": 0, "failed": 0, "skipped": 0}

    def report(ok, what, why=""):
        results["passed" if ok else "failed"] += 1
        print(f"PASS {what}" if ok else f"FAIL {what}: {why}")

    for tool in (args.server_bin, args.cli_bin, "timeout", "sh"):
        if shutil.which(tool) is None:
            results["skipped"] += 1
            print(f"SKIP e2e logic simulation: {tool} not found")
            print(f"RESULT passed=0 failed=0 skipped={results['skipped']}")
            return 0

    writer_script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "writer.sh")
    workdir = tempfile.mkdtemp(prefix="rf-e2e-sim-")
    log_path = os.path.join(workdir, "writer.log")
    stop_file = os.path.join(workdir, "stop")
    proxy = Proxy()
    try:
        with Processes() as procs:
            port_a, port_b, port_c = free_port(), free_port(), free_port()
            start_server(procs, args.server_bin, workdir, port_a)
            report(wait_until(lambda: cli(args.cli_bin, port_a, "PING") == "PONG", 10),
                   f"master {args.server_bin} up on 127.0.0.1:{port_a}", "no PONG")
            start_server(procs, args.server_bin, workdir, port_b, replica_of=port_a)
            report(wait_until(lambda: "master_link_status:up" in cli(args.cli_bin, port_b, "INFO", "replication"), 15),
                   "replica linked to the master", "master_link_status never up")
            proxy.start(port_a)

            env = dict(os.environ, REDIS_HOST="127.0.0.1", REDIS_PORT=str(proxy.port), KEY_PREFIX="sim",
                       STOP_FILE=stop_file, INTERVAL="0.02", WAIT_MS="500", MAX_WRITES="20000")
            env.pop("REDISCLI_AUTH", None)
            writer = procs.spawn(["sh", writer_script], env=env, stdout=subprocess.PIPE, text=True)

            def stamp_output():
                with open(log_path, "w", encoding="utf-8") as out:
                    for line in writer.stdout:
                        out.write(f"{now_rfc3339()} {line}")
                        out.flush()
            stamper = threading.Thread(target=stamp_output, daemon=True)
            stamper.start()

            report(wait_until(lambda: count(log_path, "ACK") >= 20, 15),
                   "writer gets acknowledged writes through the proxy", f"{count(log_path, 'ACK')} ACKs")
            disrupted_at = dt.datetime.now(dt.timezone.utc)
            disrupted_text = disrupted_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            procs.procs[0].kill()  # the master dies
            time.sleep(args.down_after)  # sentinels' down-after-milliseconds
            cli(args.cli_bin, port_b, "REPLICAOF", "NO", "ONE")  # failover
            proxy.retarget(port_b)  # the master Service's endpoints move
            start_server(procs, args.server_bin, workdir, port_c, replica_of=port_b)  # old pod back as replica
            report(wait_until(lambda: count(log_path, "ACK", since=disrupted_at) >= 20, 20),
                   "writes recover after the failover", f"{count(log_path, 'ACK', since=disrupted_at)} ACKs after it")
            open(stop_file, "w").close()
            try:
                writer.wait(10)
            except subprocess.TimeoutExpired:
                writer.kill()
            stamper.join(5)

            acked_path = os.path.join(workdir, "acked")
            analysis = subprocess.run(
                [sys.executable, __file__, "analyze", log_path, "--disrupted-at", disrupted_text,
                 "--prefix", "sim", "--acked-out", acked_path, "--max-window-ms", "15000"],
                capture_output=True, text=True, timeout=30)
            summary = json.loads(analysis.stdout.strip().splitlines()[-1]) if analysis.stdout.strip() else {}
            print(f"  simulated failover: {json.dumps(summary, sort_keys=True)}")
            report(analysis.returncode == 0, "analyze: writes recovered within 15 s", analysis.stderr.strip())
            report(summary.get("failed_after_disruption", 0) > 0,
                   "analyze: the outage shows up as failed writes", "no FAIL recorded after the master died")
            window = summary.get("write_failure_window_ms") or 0
            report(window >= args.down_after * 1000 * 0.5, "analyze: failure window covers the outage",
                   f"{window} ms < down-after {args.down_after} s")

            def readback(port):
                commands = subprocess.run([sys.executable, __file__, "get-commands", acked_path],
                                          capture_output=True, text=True, timeout=30).stdout
                replies = subprocess.run([args.cli_bin, "-h", "127.0.0.1", "-p", str(port)], input=commands,
                                         capture_output=True, text=True, timeout=60).stdout
                replies_path = os.path.join(workdir, f"replies-{port}")
                with open(replies_path, "w", encoding="utf-8") as handle:
                    handle.write(replies)
                return subprocess.run([sys.executable, __file__, "readback", acked_path, replies_path],
                                      capture_output=True, text=True, timeout=30)

            result = readback(proxy.port)
            report(result.returncode == 0 and summary.get("acked", 0) >= 40,
                   f"every acknowledged write is readable through the moved proxy ({result.stdout.strip()})",
                   result.stdout.strip())
            report(wait_until(lambda: "master_link_status:up" in cli(args.cli_bin, port_c, "INFO", "replication"), 15),
                   "the restarted member syncs as a replica of the new master", "never linked")
            time.sleep(0.5)
            result = readback(port_c)
            report(result.returncode == 0, "the new replica holds every acknowledged write", result.stdout.strip())

            # The check must be able to fail: an empty server has lost every write.
            port_d = free_port()
            start_server(procs, args.server_bin, workdir, port_d)
            wait_until(lambda: cli(args.cli_bin, port_d, "PING") == "PONG", 10)
            result = readback(port_d)
            report(result.returncode != 0 and "LOST" in result.stdout,
                   "readback detects lost writes on an empty server", "an empty server passed the readback")
            no_recovery = os.path.join(workdir, "no-recovery.log")
            with open(no_recovery, "w", encoding="utf-8") as handle:
                handle.write("2026-01-01T00:00:00.000000000Z ACK 1\n2026-01-01T00:00:01.5Z FAIL 2 x\n")
            result = subprocess.run([sys.executable, __file__, "analyze", no_recovery,
                                     "--disrupted-at", "2026-01-01T00:00:01Z"], capture_output=True, text=True)
            report(result.returncode != 0, "analyze fails when writes never recover", "it passed")
    finally:
        proxy.stop() if proxy.server else None
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"RESULT passed={results['passed']} failed={results['failed']} skipped={results['skipped']}")
    return 1 if results["failed"] else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("stamp")
    analyze_p = sub.add_parser("analyze")
    analyze_p.add_argument("log")
    analyze_p.add_argument("--disrupted-at", required=True)
    analyze_p.add_argument("--prefix", default="e2e")
    analyze_p.add_argument("--acked-out")
    analyze_p.add_argument("--max-window-ms", type=int, default=0)
    get_p = sub.add_parser("get-commands")
    get_p.add_argument("acked")
    readback_p = sub.add_parser("readback")
    readback_p.add_argument("acked")
    readback_p.add_argument("replies")
    sim = sub.add_parser("simulate")
    sim.add_argument("--server-bin", default="redis-server")
    sim.add_argument("--cli-bin", default="redis-cli")
    sim.add_argument("--down-after", type=float, default=1.0, help="seconds between the kill and the failover")
    args = parser.parse_args()
    handlers = {"stamp": cmd_stamp, "analyze": cmd_analyze, "get-commands": cmd_get_commands,
                "readback": cmd_readback, "simulate": cmd_simulate}
    return handlers[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
