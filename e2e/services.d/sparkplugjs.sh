# Eclipse Tahu's JavaScript Sparkplug B payload codec (npm sparkplug-payload,
# with its own copy of the schema compiled by protobufjs): the independent
# decoder the e2e tests read flowd's edge-node messages back with. Not a
# server; the tests run e2e/sparkplug_decode.js with node.
SPARKPLUG_PAYLOAD_VERSION=1.0.3

sparkplugjs_dir() { echo "$FLOWD_CACHE/sparkplug-payload-$SPARKPLUG_PAYLOAD_VERSION"; }

sparkplugjs_up() {
  local dir; dir=$(sparkplugjs_dir)
  [ -f "$dir/node_modules/sparkplug-payload/package.json" ] && return 0
  command -v npm >/dev/null || apt_install nodejs npm
  log "npm install sparkplug-payload@$SPARKPLUG_PAYLOAD_VERSION into $dir"
  mkdir -p "$dir"
  (cd "$dir" && npm install --no-audit --no-fund --silent "sparkplug-payload@$SPARKPLUG_PAYLOAD_VERSION" >&2)
}

sparkplugjs_down() { :; }

sparkplugjs_env() { echo "export FLOWD_TEST_SPARKPLUG_JS=$(sparkplugjs_dir)"; }
