#!/usr/bin/env bash
# Stand-in for the raftgate binary, to test the PLUMBING of bench/proxy.sh only
# (it is nginx underneath; its numbers say nothing about raftgate):
#
#   RAFTGATE_BIN=bench/examples/standin-raftgate.sh DURATION=2s ROUNDS=1 bench/proxy.sh
#
# Understands the two invocations proxy.sh uses: `-t -c FILE` and `-c FILE`.
# Test knobs:
#   STANDIN_REJECT=WORD  reject any config containing WORD the way raftgate rejects
#                        unknown directives (FILE:LINE: message, exit 1), e.g.
#                        STANDIN_REJECT=keepalive_requests exercises the fallback to
#                        the minimal config
#   STANDIN_BROKEN=1     proxy to a closed port, so the response check must fail
set -u
check=0 conf=""
while (($#)); do
  case $1 in
    -t) check=1 ;;
    -c) conf=$2; shift ;;
    --version) echo "standin-raftgate (nginx $(nginx -v 2>&1 | sed 's/.*\///'))"; exit 0 ;;
    *) echo "standin-raftgate: unknown argument $1" >&2; exit 1 ;;
  esac
  shift
done
[[ -n $conf ]] || { echo "standin-raftgate: -c FILE required" >&2; exit 1; }
if [[ -n ${STANDIN_REJECT:-} ]] && grep -n -m1 -w -- "$STANDIN_REJECT" "$conf" >/dev/null; then
  line=$(grep -n -m1 -w -- "$STANDIN_REJECT" "$conf" | cut -d: -f1)
  echo "$conf:$line: unknown directive \"$STANDIN_REJECT\"" >&2
  exit 1
fi
run=$conf
if [[ ${STANDIN_BROKEN:-0} == 1 ]]; then
  run=$PWD/standin-broken.conf     # proxy.sh runs raftgate in its scratch dir
  sed 's/server 127\.0\.0\.1:[0-9]*;/server 127.0.0.1:1;/' "$conf" >"$run"
fi
if ((check)); then exec nginx -t -q -e stderr -g 'daemon off;' -c "$run"; fi
exec nginx -e stderr -g 'daemon off;' -c "$run"
