# Helpers shared by the service scripts. Everything binds to 127.0.0.1.

log() { echo "services: $*" >&2; }

# wait_port PORT SECONDS: wait until something listens on 127.0.0.1:PORT.
wait_port() {
  local port=$1 secs=${2:-60} i
  for ((i = 0; i < secs * 5; i++)); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  log "nothing answered on 127.0.0.1:$port after ${secs}s"
  return 1
}

# port_open PORT: true when something listens.
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# apt_install PKG...: install Debian packages that are missing.
apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "apt-get install ${missing[*]}"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -qq >/dev/null 2>&1 || true
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# start_bg NAME CMD...: start a daemon, logging to $FLOWD_STATE/NAME.log, pid in NAME.pid.
start_bg() {
  local name=$1; shift
  nohup "$@" >"$FLOWD_STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$FLOWD_STATE/$name.pid"
}

# stop_bg NAME: stop a daemon started with start_bg.
stop_bg() {
  local pidf="$FLOWD_STATE/$1.pid"
  [ -f "$pidf" ] || return 0
  local pid; pid=$(cat "$pidf")
  if kill "$pid" 2>/dev/null; then
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
}

# pip_venv DIR IMPORT SPEC...: make a Python venv in DIR (under $FLOWD_CACHE)
# holding the PyPI packages SPEC..., unless `import IMPORT` already works there.
pip_venv() {
  local venv=$1 mod=$2; shift 2
  "$venv/bin/python" -c "import $mod" >/dev/null 2>&1 && return 0
  log "installing $* into $venv"
  python3 -m venv "$venv" >/dev/null 2>&1 || { apt_install python3-venv; rm -rf "$venv"; python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --disable-pip-version-check "$@"
}
