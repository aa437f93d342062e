# Event Hubs AMQP mock: the npm package mock-event-hub behind a small Node
# launcher (eventhubs/launcher.js) that bridges its differences from
# azeventhubs/v2. TLS AMQP on 127.0.0.1:15671 (certificate for "localhost"),
# test control (recorded messages) on http://127.0.0.1:15672.

EH_SAS_KEY='Zmxvd2QtZTJlLWV2ZW50aHVicy1rZXk='
EH_CONNSTR="Endpoint=sb://localhost:15671/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=$EH_SAS_KEY;EntityPath=flowd"

eventhubs_dir() { echo "$FLOWD_CACHE/eventhubs-mock"; }

eventhubs_install() {
  local dir; dir=$(eventhubs_dir)
  mkdir -p "$dir"
  cp "$here/services.d/eventhubs/package.json" "$here/services.d/eventhubs/launcher.js" "$dir/"
  if [ ! -d "$dir/node_modules/mock-event-hub" ]; then
    log "eventhubs: npm install mock-event-hub"
    (cd "$dir" && npm install --no-audit --no-fund --silent >&2)
  fi
  command -v openssl >/dev/null || apt_install openssl
  local tls=$FLOWD_STATE/eventhubs
  mkdir -p "$tls"
  if [ ! -f "$tls/cert.pem" ] || [ ! -f "$tls/key.pem" ]; then
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
      -keyout "$tls/key.pem" -out "$tls/cert.pem" >/dev/null 2>&1
  fi
}

eventhubs_up() {
  if port_open 15671 && port_open 15672; then return 0; fi
  eventhubs_install
  local dir; dir=$(eventhubs_dir)
  EH_KEY="$FLOWD_STATE/eventhubs/key.pem" EH_CERT="$FLOWD_STATE/eventhubs/cert.pem" \
    start_bg eventhubs node "$dir/launcher.js"
  wait_port 15671 30 && wait_port 15672 10
}

eventhubs_down() { stop_bg eventhubs; }

eventhubs_env() {
  echo "export FLOWD_TEST_EVENTHUBS='$EH_CONNSTR'"
  echo "export FLOWD_TEST_EVENTHUBS_CA=$FLOWD_STATE/eventhubs/cert.pem"
  echo "export FLOWD_TEST_EVENTHUBS_CONTROL=http://127.0.0.1:15672"
}
