#!/usr/bin/env python3
"""Small stdlib helpers for bench/proxy.sh and bench/writes.sh (Linux /proc only).

  benchutil.py pg-cpu PGID...   -> one line per PGID: CPU seconds (user+sys, all threads)
                                   used so far by the live processes in that process group
  benchutil.py busy SECONDS     -> average busy % of all cores over SECONDS
  benchutil.py wrk-result LOG   -> the BENCHRESULT fields of a wrk log as k=v lines

etcd 3.4 JSON gateway (URL = http://host:port, API = /v3 or /v3beta):
  benchutil.py etcd-leader API URL...          -> "<leader-url> <follower-url>..." (URL order)
  benchutil.py etcd-seed API URL PREFIX N      -> puts PREFIX0000..N-1 = seed-value-0000..
  benchutil.py etcd-count API URL PREFIX       -> number of keys with PREFIX (linearizable)
  benchutil.py etcd-reset API URL PREFIX       -> deletes them, then compacts at that revision
                                                  (physical): prints "deleted=N revision=R"

raftgate (NGINX Plus API; ZONE_URL = http://host:port/api/2/http/keyvals/ZONE):
  benchutil.py kv-leader URL...                -> "<leader-url> <follower-url>..."; URL i is
                                                  node i (GET /api/2/cluster: "leader": id)
  benchutil.py kv-reset ZONE_URL PREFIX N      -> DELETE the zone (204), then POST
                                                  PREFIX0000..N-1 = seed-value-0000.. (201)
  benchutil.py kv-count ZONE_URL PREFIX [VALUE] -> keys with PREFIX (and that VALUE), from a
                                                  linearizable GET of the whole zone
"""
import base64
import json
import os
import sys
import time
import urllib.error
import urllib.request


def pg_cpu(pgids):
    tot = {p: 0 for p in pgids}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                line = f.read()
        except OSError:
            continue
        # fields after "(comm)": state ppid pgrp ... utime(14) stime(15)
        f = line[line.rindex(")") + 2:].split()
        if f[2] in tot:
            tot[f[2]] += int(f[11]) + int(f[12])
    hz = os.sysconf("SC_CLK_TCK")
    for p in pgids:
        print("%.3f" % (tot[p] / hz))


def busy(seconds):
    def snap():
        r = {}
        with open("/proc/stat") as f:
            for line in f:
                if line.startswith("cpu") and line[3].isdigit():
                    v = [int(x) for x in line.split()[1:9]]
                    r[line.split()[0]] = (sum(v) - v[3] - v[4], sum(v))
        return r
    a = snap()
    time.sleep(seconds)
    b = snap()
    pct = [100.0 * (b[c][0] - a[c][0]) / max(1, b[c][1] - a[c][1]) for c in a if c in b]
    print("%.0f" % (sum(pct) / max(1, len(pct))))


def wrk_result(path):
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("BENCHRESULT "):
                for kv in line.split()[1:]:
                    print(kv)
                return
    sys.exit("no BENCHRESULT line in " + path)


def b64(s):
    return base64.b64encode(s.encode()).decode()


def http(method, url, obj=None, timeout=10, want=None):
    """-> (status, parsed JSON body or None). Raises if `want` is given and differs."""
    data = None if obj is None else json.dumps(obj).encode()
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    if want is not None and status not in want:
        raise SystemExit("%s %s: status %d (want %s): %s"
                         % (method, url, status, want, body[:300].decode(errors="replace")))
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, None


def prefix_end(p):
    b = bytearray(p.encode())
    b[-1] += 1
    return base64.b64encode(bytes(b)).decode()


def seed_keys(prefix, n):
    return {"%s%04d" % (prefix, i): "seed-value-%04d" % i for i in range(n)}


def etcd(cmd, api, urls, rest):
    urls = [u.rstrip("/") for u in urls]
    if cmd == "etcd-leader":
        leader, followers = None, []
        for u in urls:
            _, st = http("POST", u + api + "/maintenance/status", {}, timeout=5, want=(200,))
            if st.get("leader") and st["leader"] == st["header"]["member_id"]:
                leader = u
            else:
                followers.append(u)
        if not leader:
            sys.exit("no etcd leader found")
        print(" ".join([leader] + followers))
        return
    url = urls[0]
    if cmd == "etcd-seed":
        for k, v in seed_keys(rest[0], int(rest[1])).items():
            http("POST", url + api + "/kv/put", {"key": b64(k), "value": b64(v)}, want=(200,))
    elif cmd == "etcd-count":
        _, r = http("POST", url + api + "/kv/range", {"key": b64(rest[0]), "range_end": prefix_end(rest[0]),
                                                      "count_only": True}, timeout=30, want=(200,))
        print(int(r.get("count", 0)))
    elif cmd == "etcd-reset":
        # Without the compaction, etcd keeps every revision and tombstone: after a
        # deleterange of ~100k keys its range reads were ~8x slower (measured).
        _, r = http("POST", url + api + "/kv/deleterange", {"key": b64(rest[0]), "range_end": prefix_end(rest[0])},
                    timeout=60, want=(200,))
        rev = r["header"]["revision"]
        http("POST", url + api + "/kv/compaction", {"revision": rev, "physical": True}, timeout=120, want=(200,))
        print("deleted=%d revision=%s" % (int(r.get("deleted", 0)), rev))


def kv(cmd, args):
    if cmd == "kv-leader":
        urls = [u.rstrip("/") for u in args]
        last = None
        for u in urls:  # the first node that answers and knows a leader
            try:
                _, st = http("GET", u + "/api/2/cluster", timeout=5, want=(200,))
            except (SystemExit, OSError) as e:
                last = e
                continue
            lid = st.get("leader") if st else None
            if isinstance(lid, int) and 1 <= lid <= len(urls):
                print(" ".join([urls[lid - 1]] + [x for i, x in enumerate(urls) if i != lid - 1]))
                return
        sys.exit("no raftgate leader known (%s)" % (last or "no leader yet"))
    zone = args[0]
    if cmd == "kv-reset":
        http("DELETE", zone, timeout=30, want=(204,))
        if int(args[2]) > 0:
            http("POST", zone, seed_keys(args[1], int(args[2])), timeout=30, want=(201,))
    elif cmd == "kv-count":
        _, obj = http("GET", zone, timeout=60, want=(200,))
        prefix, value = args[1], (args[2] if len(args) > 2 else None)
        print(sum(1 for k, v in obj.items() if k.startswith(prefix) and (value is None or v == value)))


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd = argv[1]
    if cmd == "pg-cpu":
        pg_cpu(argv[2:])
    elif cmd == "busy":
        busy(float(argv[2]))
    elif cmd == "wrk-result":
        wrk_result(argv[2])
    elif cmd == "etcd-leader":
        etcd(cmd, argv[2], argv[3:], [])
    elif cmd in ("etcd-seed", "etcd-count", "etcd-reset"):
        etcd(cmd, argv[2], [argv[3]], argv[4:])
    elif cmd in ("kv-leader", "kv-reset", "kv-count"):
        kv(cmd, argv[2:])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
