#!/usr/bin/env bash
# The peer venv for `make bench`: torch 2.13.0 first (the CPU wheel), then the peers pinned and
# constrained to it, so that pip never swaps torch for another build. OpenNMT-py and JoeyNMT ask for
# other torch versions: they are installed with --no-deps plus the few modules they import, and
# left out (with a note in peers.json, which the benchmark reads) if they do not import then.
#
#   benchmarks/setup_venv.sh [VENV]        (default .bench-venv; PY=python3.11 to choose the python)
set -uo pipefail
VENV=${1:-.bench-venv}
PY=${PY:-python3}
TORCH=${TORCH:-torch==2.13.0}
HERE=$(cd "$(dirname "$0")" && pwd)
set -e
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
echo '*' > "$VENV/.gitignore"
PIP=("$VENV/bin/python" -m pip install -q)
"${PIP[@]}" "$TORCH"
CONSTRAINTS="$VENV/constraints.txt"
echo "$TORCH" > "$CONSTRAINTS"
"${PIP[@]}" -c "$CONSTRAINTS" -r "$HERE/requirements-peers.txt"
set +e

status=()
try_peer() {  # try_peer NAME "PKG==VER" "IMPORT-CHECK" DEPS...
  local name=$1 pkg=$2 check=$3; shift 3
  local log="$VENV/install-$name.log"
  if "${PIP[@]}" --no-deps "$pkg" >"$log" 2>&1 \
     && { [ $# -eq 0 ] || "${PIP[@]}" -c "$CONSTRAINTS" "$@" >>"$log" 2>&1; } \
     && "$VENV/bin/python" -c "$check" >>"$log" 2>&1; then
    status+=("\"$name\": {\"ok\": true, \"note\": \"$pkg (--no-deps) against $TORCH\"}")
    echo "bench-venv: $pkg installed"
  else
    local why
    why=$(grep -E "Error|error" "$log" | tail -1 | tr -d '"\\' | cut -c1-200)
    status+=("\"$name\": {\"ok\": false, \"note\": \"$pkg does not run against $TORCH: ${why:-see $log}\"}")
    echo "bench-venv: $pkg left out (see $log)"
  fi
}
try_peer onmt "OpenNMT-py==3.5.1" "import onmt, onmt.bin.train, onmt.bin.translate" \
  "configargparse==1.7.1" "pyyaml" "six" "rapidfuzz" "pyonmttok>=1.37,<2" "tensorboard" "waitress" "flask" "pyahocorasick" \
  "spacy" "fasttext-wheel"
try_peer joeynmt "joeynmt==2.3.0" "import joeynmt, joeynmt.training, joeynmt.prediction" \
  "pyyaml" "six" "subword-nmt" "sacremoses" "tensorboard" "wrapt" "pandas" "matplotlib" "seaborn" "packaging" \
  "importlib-metadata"
{ echo "{"; (IFS=$',\n'; echo "${status[*]}" | sed 's/^/  /'); echo "}"; } > "$VENV/peers.json"
cat "$VENV/peers.json"
