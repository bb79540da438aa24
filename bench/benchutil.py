#!/usr/bin/env python3
"""Small stdlib helpers for bench/proxy.sh (Linux /proc only).

  benchutil.py pg-cpu PGID...   -> one line per PGID: CPU seconds (user+sys, all threads)
                                   used so far by the live processes in that process group
  benchutil.py busy SECONDS     -> average busy % of all cores over SECONDS
  benchutil.py wrk-result LOG   -> the BENCHRESULT fields of a wrk log as k=v lines
"""
import os
import sys
import time


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
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
