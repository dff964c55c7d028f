#!/usr/bin/env bash
# Guest (scripts/vm/run.sh): Firefox ESR and Chromium, with no extension, register and sign
# in on a test page (webauthn.html on http://localhost:8000) through `hybrid-bridge key` on
# /dev/uhid, with phone-sim as the phone. The key exists before the browsers start (there is
# no udevd to announce a later one). Results are verified with python-fido2, and the requests
# each browser sent are printed from the key's log. One PASS/FAIL line per check.
#
#   guest-browsers.sh BIN_DIR
set -u
bin=$1
here=$VM_SCRIPT_DIR
export PATH="$bin:$PATH" RUST_LOG=warn,bridge=info
relay=ws://127.0.0.1:8080
fails=0
up() { cut -d' ' -f1 /proc/uptime; }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
stage() { echo "T $(up) $*"; }
# The relay, the phone driver and the key end with the suite, so the next one starts clean.
trap 'kill $(jobs -p) 2>/dev/null' EXIT

stage guest-shell
tunnel-server --listen 127.0.0.1:8080 >relay.log 2>&1 &
phone_driver() {
  local last="" url
  while :; do
    url=$(cat qr.txt 2>/dev/null)
    if [ -n "$url" ] && [ "$url" != "$last" ]; then
      last=$url
      echo "[$(up)] phone: QR code" >>phone.log
      phone-sim --store phone.json scan --qr "$url" --tunnel-override $relay \
        --advert-file adverts.txt >>phone.log 2>&1
    fi
    sleep 0.05
  done
}
phone_driver &
hybrid-bridge --links-file links.json key --no-window --no-qr --no-link --tunnel-override $relay \
  --advert-file adverts.txt --qr-file qr.txt >>key.log 2>&1 &
for _ in $(seq 300); do
  ls /sys/class/hidraw/*/device/uevent >/dev/null 2>&1 &&
    grep -q 'HID_ID=0003:00001209:0000F1D0' /sys/class/hidraw/*/device/uevent && break
  sleep 0.1
done
stage key-ready
python3 "$here/server.py" "$here" 8000 >server.log 2>&1 &
export HOME=/tmp/home

# run_browser NAME COMMAND...: starts it on the page, waits for the page's "done", verifies.
run_browser() {
  local name=$1 start
  shift
  start=$(up)
  local mark
  mark=$(wc -l <key.log)
  stage "$name-start"
  "$@" "http://localhost:8000/webauthn.html?b=$name" >"$name.log" 2>&1 &
  local pid=$!
  for _ in $(seq 2000); do
    [ -e "done-$name" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.4
  done
  stage "$name-finished"
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$pid" 2>/dev/null
  cut -c1-160 "results-$name.txt" 2>/dev/null | sed 's/^/    /'
  if python3 "$here/verify_browser.py" "results-$name.txt" >"verify-$name.txt" 2>&1; then
    pass "$name registers and signs in through the key, with no extension ($(awk "BEGIN{print int($(up) - $start)}") s)"
  else
    fail "$name through the key"
    tail -20 "$name.log"
  fi
  sed 's/^/    /' "verify-$name.txt"
  echo "    what $name sent (the key's log):"
  tail -n +"$((mark + 1))" key.log | grep -E 'INFO .*(answered by the key|for the phone|cancelled|did not answer)' |
    sed -e 's/^.*INFO bridge::key::service: /      /' | cut -c1-170
}

# Profiles started once natively by run.sh (a first start costs minutes under TCG); their
# lock files name the host, and would make each browser refuse the profile as in use.
if [ -d "$VM_WORK/warm/firefox" ]; then
  cp -a "$VM_WORK/warm/firefox" /tmp/ffprofile
  cp -a "$VM_WORK/warm/chromium" /tmp/chromium 2>/dev/null
  rm -f /tmp/ffprofile/lock /tmp/ffprofile/.parentlock /tmp/chromium/Singleton*
fi
mkdir -p /tmp/ffprofile
cp "$here/user.js" /tmp/ffprofile/
export MOZ_CRASHREPORTER_DISABLE=1
run_browser firefox \
  firefox-esr --headless --no-remote --profile /tmp/ffprofile
# Under TCG, Chromium's child processes miss the default 15 s IPC connection timeout.
run_browser chromium \
  chromium --headless=new --no-sandbox --user-data-dir=/tmp/chromium --no-first-run \
  --disable-gpu --ipc-connection-timeout=900

if grep -q 'probe (up: false)' key.log; then
  pass "Firefox's silent probe was answered by the key, without a QR code"
else
  fail "no probe answered by the key (Firefox sends one before each sign-in)"
fi
qr_codes=$(grep -c 'phone: QR code' phone.log)
if [ "$qr_codes" = 4 ]; then
  pass "four requests reached the phone (two per browser), each with one QR code"
else
  fail "$qr_codes QR codes for four requests"
fi
stage 'done'
[ "$fails" -gt 0 ] && { echo "--- key.log"; tail -40 key.log; echo "--- phone.log"; tail -20 phone.log; }
echo "browser suite: $fails failed"
exit "$fails"
