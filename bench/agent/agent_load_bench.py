#!/usr/bin/env python3
"""siper-agent footprint and throughput against a real local siper-server.

Starts siper-server (temporary data dir, loopback, real TLS), enrolls one
siper-agent following one log file, and measures from /proc:

  1. idle: VmRSS / VmHWM / threads, and CPU (utime+stime) over a window;
  2. 1,000 events/s: lines appended by this script at that rate; RSS and CPU
     of the agent over a window after a warm-up;
  3. most events/s shipped: N lines appended as fast as possible; the rate is
     taken at the server, from the agent's last stored seq (`siperctl agents
     list --json`), from the first append to the last line stored.

Several agents (--agent BIN, repeated) run side by side against the same
server, each following its own file at the same rate, so a before/after
comparison sees the same machine load. VmRSS counts every resident page the
process maps, shared library code included; Pss divides each shared page by
the number of processes mapping it (smaps_rollup); USS is what only this
process has (Private_Clean + Private_Dirty). Note that the local server maps
the same gRPC/protobuf/OpenSSL libraries as a dynamically linked agent,
which lowers that agent's Pss here below what it is on a PC. --smaps prints where the
pages are: per library (text, read-only/RELRO, data), heap, thread stacks.

With --sink-lines N the script instead measures how many events/s one agent
can ship when the receiving side is not the limit: it writes a file of N
lines once, then for each --agent (one after the other, --sink-rounds times
round robin) starts `agent_sink` (bench/agent/agent_sink.cc: a SINK, not
siper-server: a real gRPC C++ server with real mutual TLS that parses each
batch and acknowledges it at once, storing nothing), enrolls the agent with
it, starts the agent following that file from its beginning, and reports the
events/s acknowledged (from the agent's start, and from the first batch to
the last ack), agent CPU per event and the agent's VmHWM. The local
siper-server cannot show this on a small machine: it stores, decodes and
runs the rules on every event (see --burst-lines, measured at the server).

Prints Markdown tables. Usage:

  bench/agent/agent_load_bench.py [--build build/release] [--idle-s 20]
      [--rate-s 60] [--burst-lines 1000000] [--agent BIN ...] [--smaps] [--keep]
  bench/agent/agent_load_bench.py --build build/release --sink-lines 2000000 \
      [--sink-rounds 2] --agent OLD/siper-agent --agent NEW/siper-agent
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def proc_status(pid):
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_kib(pid):
    s = proc_status(pid)
    return int(s["VmRSS"].split()[0]), int(s["VmHWM"].split()[0]), int(s["Threads"])


def cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is state (field 3); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / TICK


def task_cpu(pid):
    """{tid: (name, user s, system s)} for each thread of `pid`."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                head, tail = f.read().rsplit(")", 1)
            fields = tail.split()
            out[int(tid)] = (head.split("(", 1)[1], int(fields[11]) / TICK, int(fields[12]) / TICK)
        except FileNotFoundError:
            pass
    return out


def line(n):
    return (f"Nov 28 10:{(n // 60) % 60:02d}:{n % 60:02d} web01 sshd[{1000 + n % 50000}]: "
            f"Failed password for invalid user admin from 203.0.113.{n % 250} port {40000 + n % 20000} ssh2\n")


def smaps_rollup(pid):
    """Fields of /proc/PID/smaps_rollup in KiB (Rss, Pss, Pss_Anon, Pss_File, ...)."""
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for l in f:
            parts = l.split()
            if len(parts) >= 3 and parts[2] == "kB":
                out[parts[0].rstrip(":")] = int(parts[1])
    return out


def smaps_breakdown(pid):
    """Resident KiB per mapping group: each file by permission (text r-x, read-only
    r--: constants and RELRO after relocation, data rw-), the heap, thread stacks
    (anonymous rw- mappings right after a ---p guard page) and other anonymous memory.
    Returns {group: [rss, pss, private_dirty]}."""
    groups = {}
    prev_guard = False
    cur = None
    with open(f"/proc/{pid}/smaps") as f:
        for l in f:
            parts = l.split()
            if not parts:
                continue
            if "-" in parts[0] and len(parts) >= 5 and not parts[0].endswith(":"):
                perms = parts[1]
                path = parts[5] if len(parts) >= 6 else ""
                if path.startswith("/"):
                    kind = {"r-xp": "text", "r--p": "ro", "rw-p": "data"}.get(perms, perms)
                    cur = f"{os.path.basename(path)} {kind}"
                elif path == "[heap]":
                    cur = "[heap]"
                elif path == "[stack]":
                    cur = "[main stack]"
                elif path.startswith("["):
                    cur = path
                elif perms == "rw-p" and prev_guard:
                    cur = "[thread stacks]"
                elif perms == "---p":
                    cur = "[guard pages]"
                else:
                    cur = "[anon]"
                prev_guard = perms == "---p" and not path
                groups.setdefault(cur, [0, 0, 0])
                continue
            if cur and parts[0] in ("Rss:", "Pss:", "Private_Dirty:"):
                i = {"Rss:": 0, "Pss:": 1, "Private_Dirty:": 2}[parts[0]]
                groups[cur][i] += int(parts[1])
    return groups


def print_breakdown(label, pid):
    r = smaps_rollup(pid)
    st = proc_status(pid)
    uss = r.get("Private_Clean", 0) + r.get("Private_Dirty", 0)
    print(f"\n{label}: VmRSS {r['Rss'] / 1024:.1f} MiB (RssAnon {st['RssAnon']}, RssFile {st['RssFile']}), "
          f"Pss {r['Pss'] / 1024:.1f} MiB (anon {r.get('Pss_Anon', 0) / 1024:.1f}, "
          f"file {r.get('Pss_File', 0) / 1024:.1f}), USS {uss / 1024:.1f} MiB")
    groups = smaps_breakdown(pid)
    # Per library: all its mappings, with text / ro / data split.
    per_lib = {}
    for name, (rss, pss, dirty) in groups.items():
        lib, _, kind = name.partition(" ") if not name.startswith("[") else (name, "", "")
        e = per_lib.setdefault(lib, {"rss": 0, "pss": 0, "dirty": 0})
        e["rss"] += rss
        e["pss"] += pss
        e["dirty"] += dirty
        if kind:
            e[kind] = e.get(kind, 0) + rss
    rows = sorted(per_lib.items(), key=lambda kv: -kv[1]["rss"])
    print("| mapping | Rss KiB | text | ro | data | Pss KiB | Private_Dirty KiB |")
    print("|---|---|---|---|---|---|---|")
    other = [0, 0, 0]
    for lib, e in rows:
        if e["rss"] < 100:
            other[0] += e["rss"]
            other[1] += e["pss"]
            other[2] += e["dirty"]
            continue
        print(f"| {lib} | {e['rss']} | {e.get('text', '')} | {e.get('ro', '')} | {e.get('data', '')} "
              f"| {e['pss']} | {e['dirty']} |")
    print(f"| (others, under 100 KiB each) | {other[0]} | | | | {other[1]} | {other[2]} |")


def stop_processes(procs):
    """SIGTERM each running process, then SIGKILL any still there after 30 s."""
    for p in procs:
        if p and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


def enroll_and_configure(binary, address, token, ca_file, state, log, extra, config):
    """Enrolls an agent with `siper-agent enroll` and writes its configuration
    (one log file read from the beginning, plus `extra` YAML). Returns enroll's stdout."""
    out = subprocess.run([binary, "enroll", "--server", address, "--token", token, "--ca",
                          ca_file, "--state-dir", state],
                         check=True, capture_output=True, text=True).stdout
    with open(config, "w") as f:
        f.write(f"server: {address}\nstate_dir: {state}\n"
                f"logs:\n  - path: {log}\n    start: beginning\n")
        if extra:
            f.write(extra.rstrip("\n") + "\n")
    return out


class Agent:
    def __init__(self, bench, index, binary, extra=""):
        self.binary = os.path.abspath(binary)
        self.extra = extra.replace("\\n", "\n")
        if not os.access(self.binary, os.X_OK):
            sys.exit(f"{self.binary}: not built")
        self.label = f"agent{index}"
        self.state = os.path.join(bench.root, f"agent{index}")
        self.log = os.path.join(bench.root, f"app{index}.log")
        self.written = 0
        self.proc = None
        self.results = []
        self.threads = []

    @property
    def pid(self):
        return self.proc.pid


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.server_bin = os.path.join(self.build, "server", "siper-server")
        self.ctl_bin = os.path.join(self.build, "cli", "siperctl")
        self.sink_bin = os.path.join(self.build, "bench", "agent", "agent_sink")
        needed = (self.sink_bin,) if args.sink_lines else (self.server_bin, self.ctl_bin)
        for b in needed:
            if not os.access(b, os.X_OK):
                sys.exit(f"{b}: not built (cmake --build {args.build} --target siper-server siper-agent "
                         f"siperctl agent_sink)")
        self.root = tempfile.mkdtemp(prefix="siper-agent-bench-")
        self.data = os.path.join(self.root, "server")
        bins = args.agent or [os.path.join(self.build, "agent", "siper-agent")]
        extras = args.extra or []
        if extras and len(extras) != len(bins):
            sys.exit("--extra: give one per --agent (an empty string for none)")
        self.agents = [Agent(self, i + 1, b, extras[i] if extras else "") for i, b in enumerate(bins)]
        self.server = None

    def ctl(self, *args):
        pki = os.path.join(self.data, "pki")
        return subprocess.run(
            [self.ctl_bin, "--server", self.address, "--ca", f"{pki}/ca.pem", "--cert",
             f"{pki}/admin.pem", "--key", f"{pki}/admin.key", *args],
            check=True, capture_output=True, text=True).stdout

    def stored_seq(self, agent):
        try:
            out = self.ctl("agents", "list", "--json")
        except subprocess.CalledProcessError as e:
            # A server busy with a burst on a loaded machine may miss siperctl's
            # deadline: ask again at the next poll.
            print(f"(siperctl agents list failed, exit {e.returncode}; retrying)", file=sys.stderr)
            return 0
        for l in out.splitlines():
            if l:
                a = json.loads(l)
                if a["agent_id"] == agent.agent_id:
                    return a["last_seq"]
        return 0

    def start(self):
        rules = os.path.join(os.path.dirname(__file__), "..", "..", "rules", "ruleset")
        self.server = subprocess.Popen(
            [self.server_bin, "--data-dir", self.data, "--listen", "127.0.0.1:0", "--rules", rules],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(self.root, "server.err"), "w"))
        port_file = os.path.join(self.data, "server.port")
        deadline = time.time() + 120
        while not os.path.exists(port_file):
            if self.server.poll() is not None or time.time() > deadline:
                sys.exit("siper-server did not start; see " + self.root)
            time.sleep(0.1)
        self.address = "127.0.0.1:" + open(port_file).read().strip()
        for agent in self.agents:
            token = self.ctl("tokens", "create").splitlines()[0]
            config = os.path.join(self.root, f"{agent.label}.yaml")
            out = enroll_and_configure(agent.binary, self.address, token,
                                       os.path.join(self.data, "pki", "ca.pem"), agent.state,
                                       agent.log, agent.extra, config)
            agent.agent_id = out.split()[-1]
            open(agent.log, "w").close()
            agent.proc = subprocess.Popen([agent.binary, "run", "--config", config],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def append(self, agent, count):
        with open(agent.log, "a") as f:
            f.write("".join(line(agent.written + i) for i in range(1, count + 1)))
        agent.written += count

    def wait_stored(self, agent, seq, timeout):
        deadline = time.time() + timeout
        while self.stored_seq(agent) < seq:
            if time.time() > deadline:
                sys.exit(f"{agent.label}: only {self.stored_seq(agent)} of {seq} events stored after {timeout} s")
            time.sleep(0.2)
        return time.time()

    def write_at(self, rate, seconds):
        """Appends `rate` lines/s to every agent's file for `seconds`, in 10 ms ticks."""
        start = time.time()
        done = 0
        while True:
            elapsed = time.time() - start
            if elapsed >= seconds:
                break
            due = int(elapsed * rate)
            if due > done:
                for agent in self.agents:
                    self.append(agent, due - done)
                done = due
            time.sleep(0.01)

    def run(self):
        a = self.args
        self.start()
        # Let them connect and settle (first heartbeat, gRPC channel up).
        for agent in self.agents:
            self.append(agent, 1)
        for agent in self.agents:
            self.wait_stored(agent, 1, 60)
        time.sleep(a.idle_s)
        c0 = {ag.label: cpu_s(ag.pid) for ag in self.agents}
        t0 = time.time()
        time.sleep(a.idle_s)
        for agent in self.agents:
            idle_cpu = (cpu_s(agent.pid) - c0[agent.label]) / (time.time() - t0)
            rss, hwm, threads = rss_kib(agent.pid)
            roll = smaps_rollup(agent.pid)
            agent.results.append(("idle", rss, roll, hwm, threads, idle_cpu, None))
            if a.smaps:
                print_breakdown(f"{agent.label} idle ({agent.binary})", agent.pid)

        # 1,000 events/s: warm up for a third of the window, then measure.
        warm = a.rate_s / 3
        self.write_at(1000, warm)
        c0 = {ag.label: cpu_s(ag.pid) for ag in self.agents}
        tasks0 = {ag.label: task_cpu(ag.pid) for ag in self.agents}
        t0 = time.time()
        self.write_at(1000, a.rate_s - warm)
        window = time.time() - t0
        for agent in self.agents:
            rate_cpu = (cpu_s(agent.pid) - c0[agent.label]) / window
            tasks1 = task_cpu(agent.pid)
            for tid in sorted(tasks1):
                name, user, system = tasks1[tid]
                _, user0, system0 = tasks0[agent.label].get(tid, (name, 0, 0))
                agent.threads.append((tid, name, (user - user0) / window, (system - system0) / window))
            rss, hwm, threads = rss_kib(agent.pid)
            roll = smaps_rollup(agent.pid)
            agent.results.append(("1,000 events/s", rss, roll, hwm, threads, rate_cpu, None))
            if a.smaps:
                print_breakdown(f"{agent.label} at 1,000 events/s ({agent.binary})", agent.pid)
        for agent in self.agents:
            self.wait_stored(agent, agent.written, 60)

        # As fast as possible, one agent after the other: N lines in 10,000-line writes.
        n = a.burst_lines
        for agent in self.agents if n > 0 else []:
            base = agent.written
            c0, sc0 = cpu_s(agent.pid), cpu_s(self.server.pid)
            t0 = time.time()
            while agent.written - base < n:
                self.append(agent, min(10000, n - (agent.written - base)))
            t_written = time.time()
            t_end = self.wait_stored(agent, agent.written, 600)
            secs = t_end - t0
            agent_cpu = cpu_s(agent.pid) - c0
            server_cpu = cpu_s(self.server.pid) - sc0
            rss, hwm, threads = rss_kib(agent.pid)
            roll = smaps_rollup(agent.pid)
            agent.results.append((f"burst of {n:,} lines", rss, roll, hwm, threads, agent_cpu / secs, n / secs))
            agent.burst = (t_written - t0, secs, agent_cpu, server_cpu)

        for agent in self.agents:
            extra = f" with {agent.extra!r}" if agent.extra else ""
            print(f"\n{agent.label}: {agent.binary}{extra}\nwritten {agent.written:,} lines, all stored at the server\n")
            print("| phase | VmRSS | Pss | USS (private) | VmHWM | threads | agent CPU (share of one core) "
                  "| events/s stored |")
            print("|---|---|---|---|---|---|---|---|")
            for name, rss, roll, hwm, threads, cpu, rate in agent.results:
                r = f"{rate:,.0f}" if rate else "-"
                uss = roll.get("Private_Clean", 0) + roll.get("Private_Dirty", 0)
                print(f"| {name} | {rss / 1024:.1f} MiB | {roll['Pss'] / 1024:.1f} MiB | {uss / 1024:.1f} MiB "
                      f"| {hwm / 1024:.1f} MiB | {threads} | {cpu * 100:.2f} % | {r} |")
            if hasattr(agent, "burst"):
                written, secs, agent_cpu, server_cpu = agent.burst
                print(f"\nburst: lines appended in {written:.2f} s, all stored after {secs:.2f} s; "
                      f"agent CPU {agent_cpu:.2f} s ({agent_cpu / n * 1e6:.1f} us/event), "
                      f"server CPU {server_cpu:.2f} s ({server_cpu / n * 1e6:.1f} us/event)")
            print("\nper thread at 1,000 events/s (user + system, share of one core):")
            for tid, name, user, system in agent.threads:
                print(f"  {tid} {name:16s} {user * 100:5.2f} % + {system * 100:5.2f} %")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")

    def run_sink(self):
        """Events/s one agent ships to agent_sink (acks at once, stores nothing)."""
        a = self.args
        n = a.sink_lines
        path = os.path.join(self.root, "sink-input.log")
        with open(path, "w") as f:
            for start in range(0, n, 10000):
                f.write("".join(line(i) for i in range(start + 1, min(n, start + 10000) + 1)))
        size = os.path.getsize(path)
        print(f"input: {n:,} lines, {size / 1e6:.0f} MB, in {path}")
        rows = []
        for rnd in range(a.sink_rounds):
            for index, agent in enumerate(self.agents):
                tag = f"r{rnd + 1}-{agent.label}"
                sink_dir = os.path.join(self.root, f"sink-{tag}")
                state = os.path.join(self.root, f"state-{tag}")
                sink = subprocess.Popen([self.sink_bin, "--dir", sink_dir], stdout=subprocess.DEVNULL,
                                        stderr=open(os.path.join(self.root, f"sink-{tag}.err"), "w"))
                proc = None
                try:
                    port_file = os.path.join(sink_dir, "sink.port")
                    deadline = time.time() + 60
                    while not os.path.exists(port_file):
                        if sink.poll() is not None or time.time() > deadline:
                            sys.exit("agent_sink did not start; see " + self.root)
                        time.sleep(0.05)
                    address = "127.0.0.1:" + open(port_file).read().strip()
                    token = open(os.path.join(sink_dir, "token")).read().strip()
                    config = os.path.join(self.root, f"{tag}.yaml")
                    enroll_and_configure(agent.binary, address, token, os.path.join(sink_dir, "ca.pem"),
                                         state, path, agent.extra, config)
                    sc0 = cpu_s(sink.pid)
                    t0 = time.time()
                    proc = subprocess.Popen([agent.binary, "run", "--config", config],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    stats_file = os.path.join(sink_dir, "sink.stats")
                    deadline = t0 + a.sink_timeout_s
                    stats = [0] * 6
                    agent_cpu = hwm = 0
                    while True:
                        try:
                            stats = [int(x) for x in open(stats_file).read().split()]
                        except (FileNotFoundError, ValueError):
                            pass
                        if proc.poll() is not None:
                            sys.exit(f"{agent.label}: the agent exited ({proc.returncode}); see {self.root}")
                        agent_cpu = cpu_s(proc.pid)
                        hwm = rss_kib(proc.pid)[1]
                        if stats[2] >= n:
                            break
                        if time.time() > deadline:
                            sys.exit(f"{agent.label}: only {stats[2]:,} of {n:,} events acknowledged "
                                     f"after {a.sink_timeout_s} s")
                        time.sleep(0.05)
                    t_end = time.time()
                    events, batches, acked, first_ns, last_ns, errors = stats
                    sink_cpu = cpu_s(sink.pid) - sc0
                    wall = t_end - t0
                    flow = (last_ns - first_ns) / 1e9
                    rows.append((tag, agent, events, batches, errors, wall, flow, agent_cpu, sink_cpu, hwm))
                finally:
                    stop_processes((proc, sink))
        print("\nagent_sink (a sink: parses each batch and acknowledges it at once, stores nothing; "
              "NOT siper-server)\n")
        print("| run | agent | events acked | batches | events/s from agent start | events/s first batch to "
              "last ack | agent CPU (us/event) | agent CPU share | sink CPU (us/event) | agent VmHWM | errors |")
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        for tag, agent, events, batches, errors, wall, flow, agent_cpu, sink_cpu, hwm in rows:
            print(f"| {tag} | {agent.binary} | {events:,} | {batches:,} | {n / wall:,.0f} | "
                  f"{n / flow if flow > 0 else 0:,.0f} | {agent_cpu / n * 1e6:.2f} | {agent_cpu / wall * 100:.0f} % | "
                  f"{sink_cpu / n * 1e6:.2f} | {hwm / 1024:.1f} MiB | {errors} |")
        print(f"\nload average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")

    def close(self):
        stop_processes([ag.proc for ag in self.agents] + [self.server])
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print("kept", self.root)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build/release")
    p.add_argument("--idle-s", type=float, default=20, help="settle, then measure, this long each")
    p.add_argument("--rate-s", type=float, default=60, help="length of the 1,000 events/s phase")
    p.add_argument("--burst-lines", type=int, default=1000000, help="0: no burst phase")
    p.add_argument("--agent", action="append",
                   help="siper-agent binary; repeat to run several side by side against one server "
                        "(same files rate, same load): before/after comparisons (default: BUILD/agent/siper-agent)")
    p.add_argument("--extra", action="append",
                   help="YAML appended to the config of the agent given at the same position "
                        "(\\n for a new line), e.g. 'read_delay_ms: 500'")
    p.add_argument("--smaps", action="store_true",
                   help="print where each agent's resident pages are (smaps, per library and kind)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--sink-lines", type=int, default=0,
                   help="instead of the phases above: events/s each --agent ships to agent_sink "
                        "(a sink that acknowledges at once and stores nothing) from a file of this many lines")
    p.add_argument("--sink-rounds", type=int, default=1, help="with --sink-lines: rounds over the agents")
    p.add_argument("--sink-timeout-s", type=float, default=600, help="with --sink-lines: per agent run")
    bench = Bench(p.parse_args())
    try:
        if bench.args.sink_lines:
            bench.run_sink()
        else:
            bench.run()
    finally:
        bench.close()


if __name__ == "__main__":
    main()
