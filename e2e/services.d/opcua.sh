# OPC UA interop server: a small asyncua (Python, PyPI) server that is not
# gopcua, so the opcua source is tested against another stack. flowd's own
# simulated PLC needs no installing: tests start it from the Go package or
# as `flowd sim plc`.
OPCUA_INTEROP_PORT=14840
OPCUA_ASYNCUA_VERSION=1.1.5

opcua_up() {
  if port_open "$OPCUA_INTEROP_PORT"; then return 0; fi
  local venv="$FLOWD_CACHE/asyncua-$OPCUA_ASYNCUA_VERSION"
  if ! "$venv/bin/python" -c 'import asyncua' >/dev/null 2>&1; then
    log "installing asyncua $OPCUA_ASYNCUA_VERSION into $venv"
    python3 -m venv "$venv" >/dev/null 2>&1 || { apt_install python3-venv; rm -rf "$venv"; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q --disable-pip-version-check "asyncua==$OPCUA_ASYNCUA_VERSION"
  fi
  start_bg opcua-interop "$venv/bin/python" "$here/opcua_interop_server.py" --port "$OPCUA_INTEROP_PORT" --pki "$FLOWD_STATE/opcua-interop-pki"
  wait_port "$OPCUA_INTEROP_PORT" 90
}

opcua_down() {
  stop_bg opcua-interop
}

opcua_env() {
  echo "export FLOWD_TEST_OPCUA_INTEROP=opc.tcp://127.0.0.1:$OPCUA_INTEROP_PORT"
  # tests that must stop or reconfigure a server start a private one with it
  echo "export FLOWD_TEST_OPCUA_PYTHON=$FLOWD_CACHE/asyncua-$OPCUA_ASYNCUA_VERSION/bin/python"
}
