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

Prints a Markdown table. Usage:

  bench/agent/agent_load_bench.py [--build build/release] [--idle-s 20]
      [--rate-s 60] [--burst-lines 1000000] [--keep]
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


class Bench:
    def __init__(self, args):
        self.args = args
        self.build = os.path.abspath(args.build)
        self.server_bin = os.path.join(self.build, "server", "siper-server")
        self.agent_bin = os.path.join(self.build, "agent", "siper-agent")
        self.ctl_bin = os.path.join(self.build, "cli", "siperctl")
        for b in (self.server_bin, self.agent_bin, self.ctl_bin):
            if not os.access(b, os.X_OK):
                sys.exit(f"{b}: not built (cmake --build {args.build} --target siper-server siper-agent siperctl)")
        self.root = tempfile.mkdtemp(prefix="siper-agent-bench-")
        self.data = os.path.join(self.root, "server")
        self.state = os.path.join(self.root, "agent")
        self.log = os.path.join(self.root, "app.log")
        self.written = 0
        self.server = self.agent = None

    def ctl(self, *args):
        pki = os.path.join(self.data, "pki")
        return subprocess.run(
            [self.ctl_bin, "--server", self.address, "--ca", f"{pki}/ca.pem", "--cert",
             f"{pki}/admin.pem", "--key", f"{pki}/admin.key", *args],
            check=True, capture_output=True, text=True).stdout

    def stored_seq(self):
        agents = [json.loads(l) for l in self.ctl("agents", "list", "--json").splitlines() if l]
        return agents[0]["last_seq"] if agents else 0

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
        token = self.ctl("tokens", "create").splitlines()[0]
        subprocess.run([self.agent_bin, "enroll", "--server", self.address, "--token", token, "--ca",
                        os.path.join(self.data, "pki", "ca.pem"), "--state-dir", self.state],
                       check=True, capture_output=True)
        open(self.log, "w").close()
        config = os.path.join(self.root, "agent.yaml")
        with open(config, "w") as f:
            f.write(f"server: {self.address}\nstate_dir: {self.state}\n"
                    f"logs:\n  - path: {self.log}\n    start: beginning\n")
        self.agent = subprocess.Popen([self.agent_bin, "run", "--config", config],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def append(self, count):
        with open(self.log, "a") as f:
            f.write("".join(line(self.written + i) for i in range(1, count + 1)))
        self.written += count

    def wait_stored(self, seq, timeout):
        deadline = time.time() + timeout
        while self.stored_seq() < seq:
            if time.time() > deadline:
                sys.exit(f"only {self.stored_seq()} of {seq} events stored after {timeout} s")
            time.sleep(0.2)
        return time.time()

    def write_at(self, rate, seconds, on_window=None):
        """Appends `rate` lines/s for `seconds`, in 10 ms ticks."""
        start = time.time()
        done = 0
        while True:
            elapsed = time.time() - start
            if elapsed >= seconds:
                break
            due = int(elapsed * rate)
            if due > done:
                self.append(due - done)
                done = due
            time.sleep(0.01)

    def run(self):
        a = self.args
        self.start()
        pid = self.agent.pid
        results = []
        # Let it connect and settle (first heartbeat, gRPC channel up).
        self.append(1)
        self.wait_stored(1, 60)
        time.sleep(a.idle_s)
        c0, t0 = cpu_s(pid), time.time()
        time.sleep(a.idle_s)
        idle_cpu = (cpu_s(pid) - c0) / (time.time() - t0)
        rss, hwm, threads = rss_kib(pid)
        results.append(("idle", rss, hwm, threads, idle_cpu, None))

        # 1,000 events/s: warm up for a third of the window, then measure.
        warm = a.rate_s / 3
        self.write_at(1000, warm)
        c0, t0, tasks0 = cpu_s(pid), time.time(), task_cpu(pid)
        self.write_at(1000, a.rate_s - warm)
        window = time.time() - t0
        rate_cpu = (cpu_s(pid) - c0) / window
        tasks1 = task_cpu(pid)
        self.threads = []
        for tid in sorted(tasks1):
            name, user, system = tasks1[tid]
            _, user0, system0 = tasks0.get(tid, (name, 0, 0))
            self.threads.append((tid, name, (user - user0) / window, (system - system0) / window))
        rss, hwm, threads = rss_kib(pid)
        self.wait_stored(self.written, 60)
        results.append(("1,000 events/s", rss, hwm, threads, rate_cpu, None))

        # As fast as possible: N lines appended in 10,000-line writes.
        base = self.written
        n = a.burst_lines
        c0, sc0 = cpu_s(pid), cpu_s(self.server.pid)
        t0 = time.time()
        while self.written - base < n:
            self.append(min(10000, n - (self.written - base)))
        t_written = time.time()
        t_end = self.wait_stored(self.written, 600)
        secs = t_end - t0
        agent_cpu = cpu_s(pid) - c0
        server_cpu = cpu_s(self.server.pid) - sc0
        rss, hwm, threads = rss_kib(pid)
        results.append((f"burst of {n:,} lines", rss, hwm, threads, agent_cpu / secs, n / secs))

        print(f"\nagent: {self.agent_bin}\nwritten {self.written:,} lines, all stored at the server\n")
        print("| phase | VmRSS | VmHWM | threads | agent CPU (share of one core) | events/s stored |")
        print("|---|---|---|---|---|---|")
        for name, rss, hwm, threads, cpu, rate in results:
            r = f"{rate:,.0f}" if rate else "-"
            print(f"| {name} | {rss / 1024:.1f} MiB | {hwm / 1024:.1f} MiB | {threads} | {cpu * 100:.2f} % | {r} |")
        print(f"\nburst: lines appended in {t_written - t0:.2f} s, all stored after {secs:.2f} s; "
              f"agent CPU {agent_cpu:.2f} s ({agent_cpu / n * 1e6:.1f} us/event), "
              f"server CPU {server_cpu:.2f} s ({server_cpu / n * 1e6:.1f} us/event)")
        print("\nper thread at 1,000 events/s (user + system, share of one core):")
        for tid, name, user, system in self.threads:
            print(f"  {tid} {name:16s} {user * 100:5.2f} % + {system * 100:5.2f} %")
        print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} CPUs)")

    def close(self):
        for p in (self.agent, self.server):
            if p and p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(30)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not self.args.keep:
            shutil.rmtree(self.root, ignore_errors=True)
        else:
            print("kept", self.root)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--build", default="build/release")
    p.add_argument("--idle-s", type=float, default=20, help="settle, then measure, this long each")
    p.add_argument("--rate-s", type=float, default=60, help="length of the 1,000 events/s phase")
    p.add_argument("--burst-lines", type=int, default=1000000)
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    bench = Bench(p.parse_args())
    try:
        bench.run()
    finally:
        bench.close()


if __name__ == "__main__":
    main()
