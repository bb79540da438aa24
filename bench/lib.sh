# lib.sh -- helpers for bench/proxy.sh and bench/writes.sh. Sourced, not executed.
# shellcheck shell=bash
#
# Process handling: every server is started pinned (taskset) in its own process
# group whose id is the server's pid, and is stopped by that pid/group only.
# CPU accounting: utime+stime (all threads) of every live process in a group,
# read from /proc/<pid>/stat before and after each wrk run.

declare -a BG_PIDS=()
LAST_PID=""

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# wrk scripts load common.lua from here.
export BENCH_LUA_DIR="$BENCH_DIR/lua"

# start_bg NAME CPUS CMD... : start CMD in $WORK_DIR, pinned to CPUS, in its own
# process group (exec chain, so $LAST_PID is the server process itself).
start_bg() {
  local name=$1 cpus=$2; shift 2
  (cd "$WORK_DIR" && exec python3 -c 'import os,sys; os.setpgid(0,0); os.execvp(sys.argv[1], sys.argv[1:])' \
    taskset -c "$cpus" "$@") >"$WORK_DIR/$name.log" 2>&1 </dev/null 8>&- 9>&- &
  LAST_PID=$!
  BG_PIDS+=("$LAST_PID")
  log "started $name pid=$LAST_PID cpus=$cpus: $*"
}

# stop_bg PID : TERM the pid, then KILL whatever is left in its process group.
stop_bg() {
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then log "pid $pid did not stop in 5 s, KILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  wait "$pid" 2>/dev/null || true
  if pgrep -g "$pid" >/dev/null 2>&1; then       # e.g. nginx workers of this master
    kill -TERM -- "-$pid" 2>/dev/null || true; sleep 0.5
    kill -KILL -- "-$pid" 2>/dev/null || true
  fi
  local keep=() p
  for p in "${BG_PIDS[@]}"; do [[ $p == "$pid" ]] || keep+=("$p"); done
  BG_PIDS=("${keep[@]}")
}

stop_all() {
  local p
  for p in "${BG_PIDS[@]}"; do stop_bg "$p"; done
}

alive() { kill -0 "$1" 2>/dev/null; }

# wait_port PORT PID [TIMEOUT_S] : until 127.0.0.1:PORT accepts; fail early if PID died
wait_port() {
  local port=$1 pid=$2 t=${3:-15} i
  for ((i = 0; i < t * 10; i++)); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    alive "$pid" || return 1
    sleep 0.1
  done
  return 1
}

port_in_use() { ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

# dur_s "5s" | "2m" | "10" -> whole seconds (rounded up)
dur_s() {
  local d=$1
  case $d in
    *ms) echo 1 ;;
    *s) echo "${d%s}" ;;
    *m) echo $((${d%m} * 60)) ;;
    *h) echo $((${d%h} * 3600)) ;;
    *) echo "$d" ;;
  esac
}

# ---- CPU accounting ----
cpu_snap() { awk '/^cpu[0-9]+ /{t=0; for(i=2;i<=9;i++) t+=$i; printf "%s:%d:%d ", substr($1,4), t-$5-$6, t}' /proc/stat; }
expand_cpus() { # "0,2-3" -> "0 2 3"
  local part out=() a b i parts
  IFS=, read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then a=${part%-*}; b=${part#*-}; for ((i = a; i <= b; i++)); do out+=("$i"); done
    else out+=("$part"); fi
  done
  echo "${out[@]}"
}
cpu_busy() { # snap0 snap1 cpulist -> avg busy % of those cores (counts everybody's processes)
  awk -v s0="$1" -v s1="$2" -v cl="$(expand_cpus "$3")" 'BEGIN{
    n=split(s0,a," "); for(i=1;i<=n;i++){split(a[i],f,":"); b0[f[1]]=f[2]; t0[f[1]]=f[3]}
    n=split(s1,a," "); for(i=1;i<=n;i++){split(a[i],f,":"); b1[f[1]]=f[2]; t1[f[1]]=f[3]}
    m=split(cl,c," "); s=0; k=0
    for(i=1;i<=m;i++){ dt=t1[c[i]]-t0[c[i]]; if(dt>0){ s+=100*(b1[c[i]]-b0[c[i]])/dt; k++ } }
    printf "%.0f", (k? s/k : -1) }'
}

# quiet_check : the box may be shared. Sample all-core busy % for 0.5 s while our
# servers are idle (load that is not ours); wait, bounded, for it to drop.
BG_BUSY=0
QUIET_SPENT=0
quiet_check() {
  local t0=$SECONDS
  BG_BUSY=$(python3 "$BENCH_DIR/benchutil.py" busy 0.5)
  while ((BG_BUSY > QUIET_MAX_PCT && SECONDS - t0 < QUIET_WAIT_S && QUIET_SPENT + SECONDS - t0 < QUIET_BUDGET_S)); do
    BG_BUSY=$(python3 "$BENCH_DIR/benchutil.py" busy 0.5)
  done
  QUIET_SPENT=$((QUIET_SPENT + SECONDS - t0))
  if ((BG_BUSY > QUIET_MAX_PCT)); then log "note: background load ${BG_BUSY}% before this run (box is shared?)"; fi
  return 0
}

# ---- package installation (Debian) ----
# ensure_tools [COMMAND...] : install what is missing, and only that, from the Debian
# archive. Default commands: what proxy.sh needs. etcd comes with etcdctl (etcd-client).
POLICY_RC_CREATED=0
# shellcheck disable=SC2120  # the arguments are optional
ensure_tools() {
  local -A pkg_of=([nginx]=nginx [haproxy]=haproxy [wrk]=wrk [curl]=curl [taskset]=util-linux
                   [python3]=python3 [ss]=iproute2 [pgrep]=procps
                   [etcd]="etcd-server etcd-client" [etcdctl]=etcd-client)
  local want=("$@") missing=() pkgs=() b p
  ((${#want[@]})) || want=(nginx haproxy wrk curl taskset python3 ss pgrep)
  for b in "${want[@]}"; do
    command -v "$b" >/dev/null 2>&1 && continue
    missing+=("$b")
    for p in ${pkg_of[$b]:-$b}; do [[ " ${pkgs[*]} " == *" $p "* ]] || pkgs+=("$p"); done
  done
  ((${#missing[@]} == 0)) && return 0
  [[ ${NO_INSTALL:-0} == 1 ]] && die "missing: ${missing[*]} (NO_INSTALL=1; apt-get install -y ${pkgs[*]})"
  command -v apt-get >/dev/null 2>&1 || die "missing: ${missing[*]} and no apt-get; install ${pkgs[*]} yourself"
  ((EUID == 0)) || die "missing: ${missing[*]}; run as root or: sudo apt-get install -y ${pkgs[*]}"
  log "installing missing tools (${missing[*]}): apt-get update && apt-get install -y --no-install-recommends ${pkgs[*]}"
  # Debian would start nginx (:80 on all interfaces), haproxy and etcd (:2379) as
  # services right away; a policy-rc.d that says "no" prevents that (removed again
  # afterwards).
  if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && POLICY_RC_CREATED=1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >&2
  local rc=$?
  remove_policy_rc
  ((rc == 0)) || die "apt-get install failed (rc=$rc)"
  for b in "${missing[@]}"; do command -v "$b" >/dev/null 2>&1 || die "$b still missing after install"; done
}
remove_policy_rc() {
  if ((POLICY_RC_CREATED)); then rm -f /usr/sbin/policy-rc.d; POLICY_RC_CREATED=0; fi
}

# The raftgate binary under test, in $RG: RAFTGATE_BIN as given, else
# target/release/raftgate, built first when missing or older than the sources (not part
# of any timed run; NO_BUILD=1 uses a stale one with a warning).
RG=""
resolve_raftgate() { # WHAT_REMAINS: what SKIP_RAFTGATE=1 still measures
  local others=$1
  if [[ -n ${RAFTGATE_BIN:-} ]]; then
    [[ -x $RAFTGATE_BIN ]] || die "RAFTGATE_BIN=$RAFTGATE_BIN is not an executable file"
    RG=$(cd "$(dirname "$RAFTGATE_BIN")" && pwd)/$(basename "$RAFTGATE_BIN")
    return 0
  fi
  RG=$REPO_DIR/target/release/raftgate
  local why="" newer
  if [[ ! -x $RG ]]; then
    why="missing"
  else
    newer=$(cd "$REPO_DIR" && find src raft storage Cargo.toml Cargo.lock rust-toolchain.toml build.rs \
      -type f -newer "$RG" 2>/dev/null | head -n1)
    [[ -n $newer ]] && why="older than $newer"
  fi
  [[ -z $why ]] && return 0
  if [[ ${NO_BUILD:-0} == 1 ]]; then
    [[ -x $RG ]] || die "$RG is missing and NO_BUILD=1 (build it, set RAFTGATE_BIN, or SKIP_RAFTGATE=1)"
    log "warning: $RG is $why; NO_BUILD=1, using it anyway"
    return 0
  fi
  command -v cargo >/dev/null 2>&1 ||
    die "$RG is $why and cargo is not on PATH. Build it (cargo build --release), set RAFTGATE_BIN=..., or run with SKIP_RAFTGATE=1 to measure only $others"
  log "raftgate binary is $why: cargo build --release --bin raftgate (not part of the timed run)"
  (cd "$REPO_DIR" && cargo build --release --bin raftgate) >&2 ||
    die "cargo build --release failed. Fix the build, set RAFTGATE_BIN=..., or run with SKIP_RAFTGATE=1 to measure only $others"
  [[ -x $RG ]] || die "cargo build finished but $RG does not exist"
}
