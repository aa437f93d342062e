# OPC UA interop server: a small asyncua (Python, PyPI) server that is not
# gopcua, so the opcua source is tested against another stack. flowd's own
# simulated PLC needs no installing: tests start it from the Go package or
# as `flowd sim plc`.
OPCUA_INTEROP_PORT=14840
OPCUA_ASYNCUA_VERSION=1.1.5

opcua_up() {
  if port_open "$OPCUA_INTEROP_PORT"; then return 0; fi
  local venv="$FLOWD_CACHE/asyncua-$OPCUA_ASYNCUA_VERSION"
  pip_venv "$venv" asyncua "asyncua==$OPCUA_ASYNCUA_VERSION"
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
