#!/usr/bin/env python3
"""bench/jwt.py -- auth_jwt, measured: proxy throughput with `auth_jwt` checking RS256 and
ES256 tokens against the same proxy without it, in one run, with nginx (plain proxy, the
same configuration without auth_jwt, which open-source nginx does not have) beside them.

Two token pools per algorithm: 64 tokens that clients send again and again (what real
clients do: a token lives minutes to hours, so the verified-token cache serves them), and
4,096 distinct tokens sent round robin (more than the cache holds: nearly every request pays
a signature check).

    bench/jwt.py                      # about 2 minutes
    DURATION=3 ROUNDS=1 bench/jwt.py  # quick look
    RAFTGATE_BIN=target/release/raftgate bench/jwt.py

raftgate and nginx are pinned to core 1, wrk to core 0 (as bench/proxy.sh does). Tokens are
signed here with fresh keys (python3-cryptography). Results: bench/results/jwt-<time>/.
"""
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sticky import Procs, free_port, wait_port, REPO  # noqa: E402

BIN = os.environ.get("RAFTGATE_BIN", os.path.join(REPO, "target/release/raftgate"))
DURATION = int(os.environ.get("DURATION", "5"))
ROUNDS = int(os.environ.get("ROUNDS", "2"))
CONNS = int(os.environ.get("CONNS", "50"))
LOADGEN_CPUS = os.environ.get("LOADGEN_CPUS", "0")


def need(tool, package):
    if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))


def crypto():
    try:
        import cryptography  # noqa: F401
    except ImportError:
        need("false", "python3-cryptography")
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
    return hashes, ec, padding, rsa, utils


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def int_b64(i, size=None):
    size = size or (i.bit_length() + 7) // 8
    return b64(i.to_bytes(size, "big"))


def keys_and_tokens(work, n_cached, n_uncached):
    hashes, ec, padding, rsa, utils = crypto()
    rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ek = ec.generate_private_key(ec.SECP256R1())
    rn = rk.public_key().public_numbers()
    en = ek.public_key().public_numbers()
    jwks = {"keys": [
        {"kty": "RSA", "kid": "rsa", "n": int_b64(rn.n), "e": int_b64(rn.e)},
        {"kty": "EC", "kid": "ec", "crv": "P-256", "x": int_b64(en.x, 32), "y": int_b64(en.y, 32)},
    ]}
    with open(os.path.join(work, "jwk.json"), "w") as f:
        json.dump(jwks, f)

    def token(alg, i):
        kid = "rsa" if alg == "RS256" else "ec"
        head = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode())
        body = b64(json.dumps({"sub": f"user-{i}", "exp": int(time.time()) + 3600,
                               "groups": ["users"]}).encode())
        msg = f"{head}.{body}".encode()
        if alg == "RS256":
            sig = rk.sign(msg, padding.PKCS1v15(), hashes.SHA256())
        else:
            r, s = utils.decode_dss_signature(ek.sign(msg, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        return f"{head}.{body}.{b64(sig)}"

    pools = {}
    for alg in ("RS256", "ES256"):
        for name, n in (("cached", n_cached), ("uncached", n_uncached)):
            path = os.path.join(work, f"tokens-{alg}-{name}.txt")
            with open(path, "w") as f:
                f.write("\n".join(token(alg, i) for i in range(n)) + "\n")
            pools[(alg, name)] = path
    return pools


def proxy_conf(work, name, port, upstream_port, jwt, nginx=False):
    auth = "    auth_jwt bench;\n    auth_jwt_key_file jwk.json;\n" if jwt else ""
    extra = ""
    if nginx:
        temp = "".join(f"  {d}_temp_path {work}/{d};\n" for d in
                       ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
        extra = temp
    path = os.path.join(work, f"{name}.conf")
    head = f"worker_processes 1;\npid {work}/{name}.pid;\nerror_log {work}/{name}.err warn;\n"
    if nginx:
        head += "daemon off;\n"
    with open(path, "w") as f:
        f.write(f"""{head}events {{ worker_connections 8192; }}
http {{
  access_log off;
{extra}  keepalive_timeout 300s;
  keepalive_requests 1000000;
  upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
{auth}    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    return path


def wrk(port, tokens):
    env = dict(os.environ, TOKENS=tokens or "")
    out = subprocess.run(
        ["taskset", "-c", LOADGEN_CPUS, "wrk", "-t1", f"-c{CONNS}", f"-d{DURATION}s", "--latency",
         "-s", os.path.join(REPO, "bench/lua/jwt.lua"), f"http://127.0.0.1:{port}/"],
        capture_output=True, text=True, env=env, check=True).stdout
    line = next(l for l in out.splitlines() if l.startswith("BENCHRESULT"))
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def main():
    for tool, pkg in (("nginx", "nginx"), ("wrk", "wrk"), ("taskset", "util-linux")):
        need(tool, pkg)
    if not os.path.exists(BIN):
        subprocess.run(["cargo", "build", "--release", "--bin", "raftgate"], cwd=REPO, check=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.join(REPO, "bench/results", f"jwt-{stamp}")
    os.makedirs(out_dir, exist_ok=True)
    work = tempfile.mkdtemp(prefix="raftgate-jwt-bench-")
    procs = Procs(work)
    try:
        pools = keys_and_tokens(work, 64, 4096)
        up_port = free_port()
        up_conf = os.path.join(work, "upstream.conf")
        temp = "".join(f"  {d}_temp_path {work}/{d};\n" for d in
                       ["client_body", "proxy", "fastcgi", "uwsgi", "scgi"])
        with open(up_conf, "w") as f:
            f.write(f"""worker_processes 1; daemon off; pid {work}/upstream.pid; error_log {work}/upstream.err;
events {{ worker_connections 8192; }}
http {{ access_log off; keepalive_requests 1000000;
{temp}  server {{ listen 127.0.0.1:{up_port}; location / {{ return 200 "hello"; }} }} }}
""")
        procs.start("upstream", ["nginx", "-c", up_conf], cpus=LOADGEN_CPUS)
        wait_port(up_port)
        cases = [("nginx plain", None, None), ("raftgate plain", None, None)]
        for alg in ("RS256", "ES256"):
            for pool in ("cached", "uncached"):
                cases.append((f"raftgate {alg} {pool}", alg, pool))
        rows = []
        for rnd in range(ROUNDS):
            for label, alg, pool in cases:
                port = free_port()
                name = label.replace(" ", "-") + f"-{rnd}"
                is_nginx = label.startswith("nginx")
                conf = proxy_conf(work, name, port, up_port, alg is not None, nginx=is_nginx)
                cmd = ["nginx", "-c", conf] if is_nginx else [BIN, "-c", conf, "--data-dir",
                                                              os.path.join(work, name + "-data")]
                p = procs.start(name, cmd)
                wait_port(port)
                tokens = pools[(alg, pool)] if alg else None
                wrk(port, tokens)  # warm-up (and the cache, for the cached pool)
                r = wrk(port, tokens)
                r.update(case=label, round=rnd)
                rows.append(r)
                print(f"  {label:26} {r['rps']:9.1f} req/s  p99 {r['p99_us'] / 1000:6.2f} ms  "
                      f"non-2xx {int(r['non2xx'])}  errors {int(r['errors'])}", flush=True)
                if r["non2xx"]:
                    raise SystemExit(f"{label}: {int(r['non2xx'])} requests were refused")
                procs.stop(p)
        med = {c[0]: statistics.median(r["rps"] for r in rows if r["case"] == c[0]) for c in cases}
        plain = med["raftgate plain"]
        ratios = {label: med[label] / plain for label, alg, _ in cases if alg}
        print("\nwith auth_jwt / without (raftgate), req/s, median over rounds:")
        for label, ratio in ratios.items():
            print(f"  {label:26} {ratio:.2f}x  ({med[label]:.0f} vs {plain:.0f})")
        print(f"raftgate plain / nginx plain: {plain / med['nginx plain']:.2f}x")
        with open(os.path.join(out_dir, "results.json"), "w") as f:
            json.dump({"rows": rows, "median_rps": med, "ratios": ratios,
                       "duration_s": DURATION, "rounds": ROUNDS, "conns": CONNS}, f, indent=2)
        print(f"\nresults: {out_dir}")
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main()
