# Mosquitto from Debian's package: a plain listener on 18830 and a TLS +
# password-file listener on 18831, with a CA and server certificate generated
# here by openssl (kept in $FLOWD_STATE/mosquitto so they survive restarts).

MOSQ_PLAIN=18830
MOSQ_TLS=18831
MOSQ_USER=flowd
MOSQ_PASS=flowd-secret

mosquitto_up() {
  local dir="$FLOWD_STATE/mosquitto"
  if port_open "$MOSQ_PLAIN" && port_open "$MOSQ_TLS"; then return 0; fi
  apt_install mosquitto mosquitto-clients openssl
  mkdir -p "$dir/data"
  if [ ! -s "$dir/server.crt" ]; then
    log "mosquitto: generating CA and server certificate"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=flowd test CA" \
      -keyout "$dir/ca.key" -out "$dir/ca.crt" >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
      -keyout "$dir/server.key" -out "$dir/server.csr" >/dev/null 2>&1
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >"$dir/san.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
      -days 3650 -extfile "$dir/san.ext" -out "$dir/server.crt" >/dev/null 2>&1
    # A second CA the broker's certificate is not signed by (untrusted-CA tests).
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=flowd other CA" \
      -keyout "$dir/other-ca.key" -out "$dir/other-ca.crt" >/dev/null 2>&1
    chmod 644 "$dir"/*.key
  fi
  # Started as root, mosquitto drops to its own user: let it write its store.
  chown mosquitto "$dir/data" 2>/dev/null || true
  : >"$dir/passwd"
  mosquitto_passwd -b "$dir/passwd" "$MOSQ_USER" "$MOSQ_PASS"
  chmod 644 "$dir/passwd"
  cat >"$dir/mosquitto.conf" <<CONF
per_listener_settings true
persistence true
persistence_location $dir/data/
max_queued_messages 1000000
max_inflight_messages 0
max_packet_size 16777216
message_size_limit 0
log_dest stderr
log_type error
log_type warning
log_type notice

listener $MOSQ_PLAIN 127.0.0.1
allow_anonymous true
max_connections -1

listener $MOSQ_TLS 127.0.0.1
allow_anonymous false
password_file $dir/passwd
cafile $dir/ca.crt
certfile $dir/server.crt
keyfile $dir/server.key
CONF
  # Debian's unit may have started a broker on 1883; ours runs in the foreground.
  start_bg mosquitto mosquitto -c "$dir/mosquitto.conf"
  wait_port "$MOSQ_PLAIN" 30 && wait_port "$MOSQ_TLS" 30
}

mosquitto_down() { stop_bg mosquitto; }

mosquitto_env() {
  local dir="$FLOWD_STATE/mosquitto"
  echo "export FLOWD_TEST_MQTT=mqtt://127.0.0.1:$MOSQ_PLAIN"
  echo "export FLOWD_TEST_MQTTS=mqtts://127.0.0.1:$MOSQ_TLS"
  echo "export FLOWD_TEST_MQTT_CA=$dir/ca.crt"
  echo "export FLOWD_TEST_MQTT_OTHER_CA=$dir/other-ca.crt"
  echo "export FLOWD_TEST_MQTT_USER=$MOSQ_USER"
  echo "export FLOWD_TEST_MQTT_PASSWORD=$MOSQ_PASS"
}
