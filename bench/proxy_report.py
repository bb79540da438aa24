#!/usr/bin/env python3
"""Summarise bench/proxy.sh results: one row per (target, concurrency), medians
over the interleaved rounds, then raftgate's ratios to nginx and HAProxy.

  proxy_report.py results/<run-id>/results.csv [more.csv ...]

Several CSVs (e.g. repeated runs) are pooled: every round of every run is one sample.
"""
import csv
import sys

from report_common import CONTENDED_PCT, fnum, med, num

TARGET_ORDER = ["raftgate", "nginx", "haproxy", "upstream"]
NUM = ["rps", "p50_ms", "p99_ms", "errors", "proxy_us_per_req", "upstream_us_per_req",
       "proxy_cpu_pct", "wrk_cpu_pct", "bg_busy_pct", "other_server_pct", "other_loadgen_pct"]
def main(files):
    rows = []
    for path in files:
        with open(path) as f:
            rows += [dict(r, _file=path) for r in csv.DictReader(f)]
    if not rows:
        sys.exit("no rows in " + " ".join(files))

    conns, groups = [], {}
    for r in rows:
        c = int(r["conns"])
        if c not in conns:
            conns.append(c)
        groups.setdefault((r["name"], c), []).append(r)
    names = [n for n in TARGET_ORDER if any(k[0] == n for k in groups)]
    names += sorted({k[0] for k in groups} - set(names))

    agg = {}
    for k, g in groups.items():
        a = {f: med([num(r, f) for r in g]) for f in NUM}
        a["errors"] = sum(num(r, "errors") or 0 for r in g)
        a["failed"] = sum(1 for r in g if num(r, "rps") is None)
        a["n"] = len(g)
        a["by_round"] = {(r["_file"], r["round"]): r for r in g}
        notes = []
        for r in g:
            n = (r.get("note") or "").strip()
            if n and n not in notes:
                notes.append(n)
        busy = [r["round"] for r in g
                 if max(num(r, "other_server_pct") or 0, num(r, "other_loadgen_pct") or 0) > CONTENDED_PCT]
        if busy:
            notes.append("contended(r%s)" % ",".join(busy))
        a["note"] = "; ".join(notes)
        agg[k] = a

    header = ["name", "conc", "req/s", "p50 ms", "p99 ms", "proxy us/req", "upstream us/req",
              "proxy cpu%", "err", "wrk%", "other srv%", "other lg%", "n", "note"]
    table = []
    for c in conns:
        for n in names:
            a = agg.get((n, c))
            if a is None:
                continue
            table.append([n, str(c), fnum(a["rps"], "%.0f"), fnum(a["p50_ms"], "%.3f"),
                          fnum(a["p99_ms"], "%.3f"), fnum(a["proxy_us_per_req"], "%.1f"),
                          fnum(a["upstream_us_per_req"], "%.1f"), fnum(a["proxy_cpu_pct"], "%.0f"),
                          "%d" % a["errors"], fnum(a["wrk_cpu_pct"], "%.0f"),
                          fnum(a["other_server_pct"], "%.0f"), fnum(a["other_loadgen_pct"], "%.0f"),
                          str(a["n"]), a["note"]])
    w = [max(len(x) for x in col) for col in zip(header, *table)]
    for r in [header] + table:
        print("  ".join(x.ljust(w[i]) if i in (0, len(r) - 1) else x.rjust(w[i])
                        for i, x in enumerate(r)).rstrip())

    print("(other srv%%/lg%%: CPU of the server/loadgen core taken by anything but our servers/wrk during"
          " the run, median; 'contended' marks samples above %d%%)" % CONTENDED_PCT)
    print()
    print("ratios = raftgate / other, medians over rounds (req/s > 1: raftgate faster;"
          " p99 and cpu/req < 1: raftgate better)")
    subject = "raftgate" if "raftgate" in names else None
    pairs = [("raftgate", "nginx"), ("raftgate", "haproxy")]
    if subject is None:
        print("  raftgate was not measured; harness sanity ratio haproxy/nginx instead:")
        pairs = [("haproxy", "nginx")]

    def ratio(x, y):
        return None if x is None or y is None or y == 0 else x / y

    for c in conns:
        for s, b in pairs:
            sa, ba = agg.get((s, c)), agg.get((b, c))
            if sa is None or ba is None:
                print("%s/%s c=%d: not measured" % (s, b, c))
                continue
            rr = ratio(sa["rps"], ba["rps"])
            pr = ratio(sa["p99_ms"], ba["p99_ms"])
            cr = ratio(sa["proxy_us_per_req"], ba["proxy_us_per_req"])
            line = "%s/%s req/s %s, p99 %s, cpu/req %s" % (
                s, b, fnum(rr, "%.2f"), fnum(pr, "%.2f"), fnum(cr, "%.2f"))
            # paired per-round ratios show how much of the difference is noise
            paired = []
            for key, srow in sa["by_round"].items():
                brow = ba["by_round"].get(key)
                if brow is not None:
                    q = ratio(num(srow, "rps"), num(brow, "rps"))
                    if q is not None:
                        paired.append(q)
            extra = ["c=%d" % c]
            if len(paired) > 1:
                extra.append("per-round req/s %.2f-%.2f" % (min(paired), max(paired)))
            if sa["errors"] or ba["errors"] or sa["failed"] or ba["failed"]:
                extra.append("ERRORS/FAILED RUNS - see table")
            if "contended" in sa["note"] + ba["note"]:
                extra.append("some samples contended by other jobs")
            if max(sa["wrk_cpu_pct"] or 0, ba["wrk_cpu_pct"] or 0) >= 90:
                extra.append("load generator near saturation: trust cpu/req over req/s")
            print("%s  (%s)" % (line, "; ".join(extra)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
