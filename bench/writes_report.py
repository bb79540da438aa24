#!/usr/bin/env python3
"""Summarise bench/writes.sh results: one row per (product, target, op, concurrency),
medians over the rounds, then raftgate's ratios to etcd.

  writes_report.py results/<run-id>/results.csv [more.csv ...]

Several CSVs (e.g. repeated runs) are pooled: every round of every run is one sample.
"""
import csv
import sys

from report_common import CONTENDED_PCT, fnum, med, num

PRODUCTS = ["etcd", "raftgate"]
TARGETS = ["leader", "follower"]
# table order: the writes (etcd put, raftgate POST, raftgate PATCH), then the reads
OPS = [("etcd", "write"), ("raftgate", "write"), ("raftgate", "patch"), ("etcd", "read"), ("raftgate", "read")]
OP_LABEL = {("etcd", "write"): "put", ("etcd", "read"): "range",
            ("raftgate", "write"): "POST", ("raftgate", "patch"): "PATCH", ("raftgate", "read"): "GET"}
NUM = ["rps", "p50_ms", "p99_ms", "srv_us_per_req", "srv_cpu_pct", "wrk_cpu_pct",
       "other_server_pct", "other_loadgen_pct", "other_product_cpu_pct"]
def ratio(x, y):
    return None if x is None or y is None or y == 0 else x / y


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
        groups.setdefault((r["product"], r["op"], r["target"], c), []).append(r)
    conns.sort()

    agg = {}
    for k, g in groups.items():
        a = {f: med([num(r, f) for r in g]) for f in NUM}
        a["non2xx"] = sum(int(num(r, "non2xx") or 0) for r in g)
        a["errors"] = sum(int(num(r, "errors") or 0) for r in g)
        a["failed"] = sum(1 for r in g if num(r, "rps") is None)
        a["n"] = len(g)
        a["by_round"] = {(r["_file"], r["round"]): r for r in g}
        checked = [r for r in g if (r.get("keys_expected") or "") != ""]
        if not checked:
            a["keys"] = "-"
        elif all(num(r, "keys_visible") is not None and num(r, "keys_visible") >= num(r, "keys_expected")
                 for r in checked):
            a["keys"] = "ok"
        else:
            a["keys"] = "MISSING"
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

    header = ["product", "target", "op", "conc", "req/s", "p50 ms", "p99 ms", "srv us/req", "srv cpu%",
              "non2xx", "err", "keys", "wrk%", "other srv%", "n", "note"]
    table = []
    for grp in (OPS[:3], OPS[3:]):
        for t in TARGETS:
            for c in conns:
                for p, op in grp:
                    a = agg.get((p, op, t, c))
                    if a is None:
                        continue
                    table.append([p, t, "%s %s" % (op, OP_LABEL[(p, op)]), str(c), fnum(a["rps"], "%.0f"),
                                  fnum(a["p50_ms"], "%.2f"), fnum(a["p99_ms"], "%.2f"),
                                  fnum(a["srv_us_per_req"], "%.0f"), fnum(a["srv_cpu_pct"], "%.0f"),
                                  "%d" % a["non2xx"], "%d" % a["errors"], a["keys"],
                                  fnum(a["wrk_cpu_pct"], "%.0f"), fnum(a["other_server_pct"], "%.0f"),
                                  str(a["n"]), a["note"]])
    w = [max(len(x) for x in col) for col in zip(header, *table)]
    for r in [header] + table:
        print("  ".join(x.ljust(w[i]) if i in (0, 1, 2, len(r) - 1) else x.rjust(w[i])
                        for i, x in enumerate(r)).rstrip())
    print("(err = all wrk errors incl. non2xx; keys = written keys visible afterwards >= 2xx answers;"
          " other srv%%: CPU of the server core taken by anything but the two clusters;"
          " 'contended' marks samples above %d%%)" % CONTENDED_PCT)

    if not any(k[0] == "raftgate" for k in agg) or not any(k[0] == "etcd" for k in agg):
        print()
        print("(only one product measured: no ratios)")
        return

    print()
    print("ratios raftgate/etcd, medians over rounds (req/s > 1: raftgate faster;"
          " p50, p99, cpu/req < 1: raftgate better)")

    def pair_line(sa, ba, t, c):
        rr, p5, p9 = ratio(sa["rps"], ba["rps"]), ratio(sa["p50_ms"], ba["p50_ms"]), ratio(sa["p99_ms"], ba["p99_ms"])
        cr = ratio(sa["srv_us_per_req"], ba["srv_us_per_req"])
        line = "  %-8s c=%-4d req/s %s  p50 %s  p99 %s  cpu/req %s   (%s vs %s req/s)" % (
            t, c, fnum(rr, "%.2f"), fnum(p5, "%.2f"), fnum(p9, "%.2f"), fnum(cr, "%.2f"),
            fnum(sa["rps"], "%.0f"), fnum(ba["rps"], "%.0f"))
        paired = []
        for key, srow in sa["by_round"].items():
            brow = ba["by_round"].get(key)
            if brow is not None:
                q = ratio(num(srow, "rps"), num(brow, "rps"))
                if q is not None:
                    paired.append(q)
        extra = []
        if len(paired) > 1:
            extra.append("per-round req/s %.2f-%.2f" % (min(paired), max(paired)))
        if sa["errors"] or ba["errors"] or sa["failed"] or ba["failed"]:
            extra.append("ERRORS/FAILED RUNS - see table")
        if "MISSING" in (sa["keys"], ba["keys"]):
            extra.append("KEYS MISSING")
        if "contended" in sa["note"] + ba["note"]:
            extra.append("some samples contended")
        if "LEADER-CHANGED" in sa["note"] + ba["note"]:
            extra.append("leader changed")
        return line + ("  [%s]" % "; ".join(extra) if extra else "")

    sections = [("writes: raftgate POST (new key) / etcd put (new key)", ("raftgate", "write"), ("etcd", "write")),
                ("writes: raftgate PATCH (existing key) / etcd put (new key)", ("raftgate", "patch"), ("etcd", "write")),
                ("linearizable reads: raftgate GET ?key= / etcd range", ("raftgate", "read"), ("etcd", "read"))]
    for title, (sp, so), (bp, bo) in sections:
        lines = []
        for t in TARGETS:
            for c in conns:
                sa, ba = agg.get((sp, so, t, c)), agg.get((bp, bo, t, c))
                if sa is not None and ba is not None:
                    lines.append(pair_line(sa, ba, t, c))
        if lines:
            print(title + ":")
            print("\n".join(lines))

    if 1 in conns:
        print("single client (c=1) write latency, p50 (p99) ms:")
        for t in TARGETS:
            e = agg.get(("etcd", "write", t, 1))
            if e is None:
                continue
            parts = []
            for op in ("write", "patch"):
                s = agg.get(("raftgate", op, t, 1))
                if s is not None:
                    parts.append("raftgate %s %s (%s) = %sx" % (
                        OP_LABEL[("raftgate", op)], fnum(s["p50_ms"], "%.2f"), fnum(s["p99_ms"], "%.2f"),
                        fnum(ratio(s["p50_ms"], e["p50_ms"]), "%.2f")))
            print("  %-8s etcd put %s (%s); %s" % (t, fnum(e["p50_ms"], "%.2f"), fnum(e["p99_ms"], "%.2f"),
                                                  "; ".join(parts)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
