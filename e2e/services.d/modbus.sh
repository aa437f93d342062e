# Modbus TCP interop server: pymodbus (Python, PyPI), another stack than the
# simonvetter/modbus library flowd uses, serving fixed values in every byte
# and word order (e2e/modbus_interop_server.py) and logging every request it
# receives, so tests can count the reads flowd sends. flowd's own simulated
# devices need no installing: tests start them as `flowd sim modbus`.
MODBUS_INTEROP_PORT=15502
MODBUS_PYMODBUS_VERSION=3.16.1

modbus_up() {
  if port_open "$MODBUS_INTEROP_PORT"; then return 0; fi
  local venv="$FLOWD_CACHE/pymodbus-$MODBUS_PYMODBUS_VERSION"
  pip_venv "$venv" pymodbus.simulator "pymodbus==$MODBUS_PYMODBUS_VERSION"
  start_bg modbus-interop "$venv/bin/python" "$here/modbus_interop_server.py" --port "$MODBUS_INTEROP_PORT" --log "$FLOWD_STATE/modbus-interop-requests.jsonl"
  wait_port "$MODBUS_INTEROP_PORT" 60
}

modbus_down() {
  stop_bg modbus-interop
}

modbus_env() {
  echo "export FLOWD_TEST_MODBUS_INTEROP=127.0.0.1:$MODBUS_INTEROP_PORT"
  echo "export FLOWD_TEST_MODBUS_INTEROP_LOG=$FLOWD_STATE/modbus-interop-requests.jsonl"
}
