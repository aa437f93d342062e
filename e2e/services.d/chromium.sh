# Headless Chromium for the status page browser test (e2e/ui_test.go). Nothing
# runs in the background: the test starts its own browser through chromedp.
# `up` only installs the Debian packages when they are missing.

chromium_bin() {
  local b
  for b in /usr/bin/chromium /usr/bin/chromium-browser; do
    [ -x "$b" ] && { echo "$b"; return 0; }
  done
  return 1
}

chromium_up() {
  local i
  # Other services may be installing packages at the same moment: retry
  # while dpkg is locked rather than fail the whole run.
  for i in 1 2 3 4 5 6; do
    chromium_bin >/dev/null && dpkg -s chromium-driver >/dev/null 2>&1 && break
    apt_install chromium chromium-driver && break
    log "chromium: apt-get failed (dpkg busy?), retrying in 10s"
    sleep 10
  done
  chromium_bin >/dev/null || { log "chromium: not installed"; return 1; }
}

chromium_down() { :; }

chromium_env() {
  local b
  b=$(chromium_bin) || return 0
  echo "export FLOWD_TEST_CHROMIUM=$b"
}
