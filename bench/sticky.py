#!/usr/bin/env python3
"""bench/sticky.py -- sticky learn, measured: proxy throughput with `sticky learn` at 1 %,
10 % and 100 % new sessions against the same proxy without `sticky`; memory per learned
session; sessions per Raft entry; and, on three nodes, the replication lag from a session
learned through node 1 to node 2 routing it (p50, p99) at a set rate of new sessions.

    bench/sticky.py                     # all of it, about 2 minutes
    DURATION=3 ROUNDS=1 bench/sticky.py # quick look
    RAFTGATE_BIN=target/release/raftgate LAG_RATE=1000 LAG_SECONDS=10 bench/sticky.py

Upstreams: one nginx with two servers that start a session (Set-Cookie: sid=$request_id)
for any request without one. raftgate and nginx are pinned to core 1, the clients to
core 0 (as bench/proxy.sh does). wrk drives the throughput runs with bench/lua/sticky.lua;
the lag run is this script's own client threads. Results: bench/results/sticky-<time>/.
"""
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import http.client

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("RAFTGATE_BIN", os.path.join(REPO, "target/release/raftgate"))
DURATION = int(os.environ.get("DURATION", "5"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
CONNS = int(os.environ.get("CONNS", "50"))
LAG_RATE = int(os.environ.get("LAG_RATE", "1000"))
LAG_SECONDS = int(os.environ.get("LAG_SECONDS", "10"))
SERVER_CPUS = os.environ.get("SERVER_CPUS", "1")
LOADGEN_CPUS = os.environ.get("LOADGEN_CPUS", "0")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_port(port, limit=20):
    t = time.time()
    while time.time() - t < limit:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"port {port} never opened")


def get(port, path, cookie=None, timeout=5):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    headers = {"Host": "bench"}
    if cookie:
        headers["Cookie"] = cookie
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read().decode()
    sid = None
    sc = r.getheader("Set-Cookie")
    if sc and sc.startswith("sid="):
        sid = sc.split(";")[0][4:]
    c.close()
    return r.status, body, sid


class Procs:
    def __init__(self, work):
        self.work = work
        self.procs = []

    def start(self, name, cmd, cpus=SERVER_CPUS):
        log = open(os.path.join(self.work, f"{name}.log"), "w")
        p = subprocess.Popen(["taskset", "-c", cpus] + cmd, stdout=log, stderr=log, cwd=self.work)
        self.procs.append(p)
        return p

    def stop(self, p):
        p.terminate()
        try:
            p.wait(5)
        except subprocess.TimeoutExpired:
            p.kill()
        self.procs.remove(p)

    def stop_all(self):
        for p in list(self.procs):
            self.stop(p)


def upstream(procs, work, ports):
    conf = os.path.join(work, "upstream.conf")
    servers = "\n".join(
        f"  server {{ listen 127.0.0.1:{p}; location / {{ add_header Set-Cookie $setc; return 200 \"{n}\"; }} }}"
        for n, p in zip(["one", "two"], ports)
    )
    temp = "".join(f"  {d}_temp_path {work}/{d};\n" for d in ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {work}/upstream.pid; error_log {work}/upstream.err;
events {{ worker_connections 4096; }}
http {{
  access_log off;
{temp}  keepalive_requests 1000000;
  map $cookie_sid $setc {{ "" "sid=$request_id; Path=/"; default ""; }}
{servers}
}}
""")
    p = procs.start("upstream", ["nginx", "-c", conf])
    for port in ports:
        wait_port(port)
    return p


def raftgate_conf(work, name, http_port, ports, sticky, cluster=""):
    learn = ("    sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone=sessions:64m timeout=1h;\n"
             if sticky else "")
    path = os.path.join(work, f"{name}.conf")
    with open(path, "w") as f:
        f.write(f"""worker_processes 1;
pid {work}/{name}.pid;
error_log {work}/{name}.err warn;
{cluster}events {{}}
http {{
  access_log off;
  keepalive_timeout 300s;
  keepalive_requests 1000000;
  upstream backend {{
    zone backend 64k;
    server 127.0.0.1:{ports[0]};
    server 127.0.0.1:{ports[1]};
    keepalive 32;
{learn}  }}
  server {{
    listen 127.0.0.1:{http_port};
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    location /api {{ api; }}
  }}
}}
""")
    return path


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cluster_status(port):
    return json.loads(get(port, "/api/2/cluster")[1])


def wrk(port, new_pct):
    env = dict(os.environ, NEW_PCT=str(new_pct))
    out = subprocess.run(
        ["taskset", "-c", LOADGEN_CPUS, "wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "--latency",
         "-s", os.path.join(REPO, "bench/lua/sticky.lua"), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, env=env, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCHRESULT"))
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def throughput(work, procs, ports, results):
    rows = []
    for rnd in range(ROUNDS):
        for sticky in (False, True):
            for pct in (1, 10, 100):
                port = free_port()
                name = f"rg-{'sticky' if sticky else 'plain'}-{pct}-{rnd}"
                conf = raftgate_conf(work, name, port, ports, sticky)
                data = os.path.join(work, name + "-data")
                p = procs.start(name, [BIN, "-c", conf, "--data-dir", data])
                wait_port(port)
                time.sleep(0.5)  # the configuration's zones reach the log
                wrk(port, pct)  # warm-up, and the returning sessions' pool
                before = rss_kib(p.pid)
                st0 = cluster_status(port)["sessions"]
                r = wrk(port, pct)
                after = rss_kib(p.pid)
                st = cluster_status(port)["sessions"]
                learned = st["learned"] - st0["learned"]
                entries = st["entries"] - st0["entries"]
                r.update(sticky=sticky, pct=pct, round=rnd, rss_growth_kib=after - before,
                         learned=learned, entries=entries, dropped=st["dropped"])
                rows.append(r)
                print(f"  {'sticky' if sticky else 'plain '} new={pct:3}%  {r['rps']:9.1f} req/s  "
                      f"p99 {r['p99_us'] / 1000:6.2f} ms  learned {learned:7}  entries {entries:6}  "
                      f"rss +{after - before} KiB  err {int(r['errors'])}", flush=True)
                procs.stop(p)
    results["throughput"] = rows
    print("\nsticky learn / no sticky, req/s (median over rounds):")
    for pct in (1, 10, 100):
        med = lambda s: statistics.median(r["rps"] for r in rows if r["sticky"] == s and r["pct"] == pct)
        ratio = med(True) / med(False)
        results.setdefault("ratios", {})[pct] = ratio
        print(f"  {pct:3}% new sessions: {ratio:.2f}x  ({med(True):.0f} vs {med(False):.0f})")
    full = [r for r in rows if r["sticky"] and r["pct"] == 100 and r["learned"]]
    if full:
        per_entry = sum(r["learned"] for r in full) / max(1, sum(r["entries"] for r in full))
        results["sessions_per_entry_at_100pct"] = per_entry
        print(f"  batching at 100% new: {per_entry:.1f} sessions per Raft entry")


def memory(work, procs, ports, results):
    """RSS growth per session over a long 100 % new-session run (the zone holds them all)."""
    port = free_port()
    conf = raftgate_conf(work, "rg-memory", port, ports, True)
    p = procs.start("rg-memory", [BIN, "-c", conf, "--data-dir", os.path.join(work, "mem-data")])
    wait_port(port)
    time.sleep(0.5)
    get(port, "/")
    before = rss_kib(p.pid)
    wrk(port, 100)
    time.sleep(1)
    after = rss_kib(p.pid)
    slab = json.loads(get(port, "/api/2/slabs/sessions")[1])
    held = sum(s["used"] for s in slab["slots"].values())
    pages = slab["pages"]["used"]
    learned = cluster_status(port)["sessions"]["learned"]
    procs.stop(p)
    per = (after - before) * 1024 / max(1, learned)
    results["memory"] = dict(rss_growth_kib=after - before, sessions=learned, bytes_per_session=per,
                             slab_pages_used=pages, slab_entries=held)
    print(f"\nmemory: +{after - before} KiB RSS for {learned} sessions = {per:.0f} bytes per session "
          f"(replicated state, both left-right copies, log and snapshot buffers included)")


def lag(work, procs, ports, results):
    """Three nodes; client threads start LAG_RATE sessions/s through node 1 and poll node 2
    with each cookie until it routes there."""
    http_ports = [free_port() for _ in range(3)]
    raft_ports = [free_port() for _ in range(3)]
    peers = "".join(f"    peer {i + 1} 127.0.0.1:{raft_ports[i]};\n" for i in range(3))
    nodes = []
    for i in range(3):
        cluster = (f"cluster {{\n    node_id {i + 1};\n    listen 127.0.0.1:{raft_ports[i]};\n{peers}"
                   f"    data_dir {work}/lag-n{i + 1};\n}}\n")
        conf = raftgate_conf(work, f"lag-n{i + 1}", http_ports[i], ports, True, cluster)
        nodes.append(procs.start(f"lag-n{i + 1}", [BIN, "-c", conf]))
    for port in http_ports:
        wait_port(port)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            if all(get(p, "/api/2/slabs/sessions")[0] == 200 for p in http_ports):
                break
        except OSError:
            pass
        time.sleep(0.1)
    lags, misses, lock = [], [0], threading.Lock()
    threads = 8
    per_thread = LAG_RATE / threads
    stop_at = time.time() + LAG_SECONDS

    def client():
        nxt = time.time()
        while time.time() < stop_at:
            nxt += 1 / per_thread
            _, server, sid = get(http_ports[0], "/")
            t0 = time.perf_counter()
            while True:
                _, body, _ = get(http_ports[1], "/", cookie=f"sid={sid}")
                if body == server:
                    break
                if time.perf_counter() - t0 > 2:
                    with lock:
                        misses[0] += 1
                    break
                time.sleep(0.0005)
            with lock:
                lags.append((time.perf_counter() - t0) * 1000)
            pause = nxt - time.time()
            if pause > 0:
                time.sleep(pause)

    ts = [threading.Thread(target=client) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    st = cluster_status(http_ports[0])["sessions"]
    lags.sort()
    q = lambda f: lags[min(len(lags) - 1, int(f * len(lags)))]
    rate = len(lags) / LAG_SECONDS
    results["lag"] = dict(sessions=len(lags), rate_per_s=rate, p50_ms=q(0.5), p99_ms=q(0.99),
                          max_ms=lags[-1], misses=misses[0], node1_learned=st["learned"],
                          node1_entries=st["entries"])
    print(f"\nlag, learned through node 1 -> routed by node 2 ({len(lags)} sessions, {rate:.0f}/s): "
          f"p50 {q(0.5):.2f} ms  p99 {q(0.99):.2f} ms  max {lags[-1]:.2f} ms  misses {misses[0]}; "
          f"node 1 sent {st['learned']} sessions in {st['entries']} entries")
    for p in nodes:
        procs.stop(p)


def main():
    for tool in ("nginx", "wrk", "taskset"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is needed (apt-get install nginx wrk util-linux)")
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release"], cwd=REPO, check=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out = os.path.join(REPO, "bench/results", f"sticky-{stamp}")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="raftgate-sticky-")
    procs = Procs(work)
    results = dict(duration_s=DURATION, rounds=ROUNDS, conns=CONNS)
    try:
        ports = [free_port(), free_port()]
        upstream(procs, work, ports)
        print(f"== sticky learn benchmark {stamp}: wrk -c{CONNS} {DURATION}s x {ROUNDS} rounds ==")
        throughput(work, procs, ports, results)
        memory(work, procs, ports, results)
        lag(work, procs, ports, results)
    finally:
        procs.stop_all()
        for f in os.listdir(work):
            if f.endswith((".conf", ".log", ".err")):
                shutil.copy(os.path.join(work, f), out)
        shutil.rmtree(work, ignore_errors=True)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    print(f"\nresults: {out}/results.json")


if __name__ == "__main__":
    sys.exit(main())
