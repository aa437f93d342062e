# Telegraf, the peer `flowd bench peer` measures flowd against: built from
# its Go module (the Go proxy) into $FLOWD_CACHE/bin with only the plugins
# the benchmark uses. Not a server: bench starts it with a generated config.
TELEGRAF_VERSION=1.37.2
TELEGRAF_TAGS="custom,inputs.opcua,inputs.opcua_listener,inputs.mqtt_consumer,inputs.modbus,outputs.kafka,parsers.json_v2,serializers.json"

# The cached binary's name carries a digest of the plugin list, so adding a
# plugin builds a new binary instead of reusing one without it.
telegraf_bin() { echo "$FLOWD_CACHE/bin/telegraf-$TELEGRAF_VERSION-$(printf %s "$TELEGRAF_TAGS" | sha256sum | cut -c1-8)"; }

telegraf_up() {
  local bin; bin=$(telegraf_bin)
  [ -x "$bin" ] && return 0
  log "telegraf: go install github.com/influxdata/telegraf/cmd/telegraf@v$TELEGRAF_VERSION (a few minutes)"
  local tmp="$FLOWD_CACHE/bin/telegraf-build"
  rm -rf "$tmp" && mkdir -p "$tmp"
  GOBIN="$tmp" go install -tags "$TELEGRAF_TAGS" "github.com/influxdata/telegraf/cmd/telegraf@v$TELEGRAF_VERSION" >&2
  mv "$tmp/telegraf" "$bin" && rm -rf "$tmp"
}

telegraf_down() { :; }

telegraf_env() { echo "export FLOWD_TEST_TELEGRAF=$(telegraf_bin)"; }
