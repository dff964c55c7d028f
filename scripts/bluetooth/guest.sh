#!/usr/bin/env bash
# The real-stack Bluetooth suite, inside the QEMU guest (scripts/vm/run.sh; started by
# scripts/bluetooth/suite.sh): two LE controllers on one virtual radio (btvirt), the real
# bluetoothd, phone-sim advertising through BlueZ on hci0 and hybrid-bridge scanning with
# btleplug on hci1, a relay on loopback, and python-fido2 as the relying party that verifies
# every result. Prints one PASS/FAIL line per check; exits 1 if any failed.
#
#   guest.sh BIN_DIR [BENCH_ROUNDS]
#
# The checks read `CHECK && pass "…" || fail "…"`: pass only prints, so fail runs only when
# the check failed (SC2015); the predicates given to waitfor are called through "$@" (SC2317).
# shellcheck disable=SC2015,SC2317
set -uo pipefail
bin=$1
bench=${2:-1}
here=$VM_SCRIPT_DIR
export PATH="$bin:$PATH" RUST_LOG=${RUST_LOG:-warn}
# One relying-party process for the whole run (rp.py serve): importing python-fido2 takes many
# seconds under emulation. It starts first, so that the import overlaps the stack's setup.
coproc RP { exec /usr/bin/python3 "$here/rp.py" serve 2> rp.log; }
# rp COMMAND ARGS...: one request; prints the reply's value, fails on an error reply.
rp() {
  local reply
  printf '%q ' "$@" >&"${RP[1]}"; echo >&"${RP[1]}"
  IFS= read -r reply <&"${RP[0]}" || { echo "rp: the relying party died: $(tail -2 rp.log)" >&2; return 1; }
  case $reply in
    ok) ;;
    "ok "*) echo "${reply#ok }" ;;
    *) echo "rp: $reply" >&2; return 1 ;;
  esac
}
up() { cut -d' ' -f1 /proc/uptime; }
failed=0
pass() { echo "PASS $1 ($(up) s)"; }
fail() { echo "FAIL $1: $2"; failed=1; }
# waitfor SECONDS COMMAND...: polls every 0.1 s.
waitfor() {
  local end=$(( $(cut -d. -f1 /proc/uptime) + $1 )); shift
  until "$@" >/dev/null 2>&1; do
    [ "$(cut -d. -f1 /proc/uptime)" -ge "$end" ] && return 1
    sleep 0.1
  done
}
powered() { [ "$(btmgmt info 2>/dev/null | grep -c 'current settings: powered')" = 2 ]; }
two_controllers() { [ "$(hciconfig | grep -c 'BD Address: 00:AA')" = 2 ]; }

echo "== the stack ($(up) s)"
mkdir -p /run/dbus
dbus-daemon --system --fork || { echo "FAIL setup: no D-Bus system bus"; exit 1; }
# One btvirt process is one radio for both controllers. Its first controller reset can time
# out while AF_ALG sets up under emulation (the controller then keeps address 00:00:…):
# start it again.
for try in 1 2 3; do
  btvirt -L -l2 > btvirt.log 2>&1 &
  btvirt=$!
  waitfor 10 two_controllers && break
  echo "btvirt try $try: the controllers did not come up"
  kill "$btvirt"; wait "$btvirt" 2>/dev/null
  waitfor 5 test ! -e /sys/class/bluetooth/hci0
done
two_controllers || { echo "FAIL setup: no virtual controllers"; hciconfig; exit 1; }
btmon -w btmon.snoop > /dev/null 2>&1 &
# bluetoothd without EATT ([GATT] Channels = 1): with it, both sides' GATT clients open LE
# credit-based channels of their own beside the phone's PSM, and the phone's kernel (Linux,
# standing in for a phone) can hand such a channel's connection response to the channel it
# accepted for the desktop (README: "EATT beside the BLE channel").
printf '[GATT]\nChannels = 1\n' > /run/bluetoothd.conf
bluetoothd -n -d -f /run/bluetoothd.conf > bluetoothd.log 2>&1 &
waitfor 60 dbus-send --system --print-reply --dest=org.bluez / org.freedesktop.DBus.Peer.Ping ||
  { echo "FAIL setup: bluetoothd is not on the bus"; exit 1; }
waitfor 30 powered || { echo "FAIL setup: the controllers are not powered"; btmgmt info; exit 1; }
phone_addr=$(btmgmt --index 0 info | awk '/addr/{print $2; exit}')
echo "controllers: hci0 (phone) $phone_addr, hci1 (desktop) $(btmgmt --index 1 info | awk '/addr/{print $2; exit}')"
pass "setup: btvirt, bluetoothd, two powered LE controllers"

relay_port=18090
relay=
start_relay() {
  tunnel-server --listen 127.0.0.1:$relay_port > relay.log 2>&1 &
  relay=$!
  waitfor 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$relay_port"
}
stop_relay() { [ -n "$relay" ] && kill "$relay" && wait "$relay" 2>/dev/null; relay=; }
tunnel=(--tunnel-override "ws://127.0.0.1:$relay_port")
# Global flags go before the command, the command's own after it.
bridge_global=(--links-file links.json --events json)
# Emulated controllers under TCG take seconds to set up an LE connection.
bridge_conn=(--adapter hci1 "${tunnel[@]}" --no-qr --ble-connect-timeout 30s)
phone_conn=(--bluez --adapter hci0 "${tunnel[@]}" --timeout 60s)

# le_links: how many LE connections the desktop's controller has made so far.
le_links() { grep -c 'connected_callback() hci1 ' bluetoothd.log; }
le_link_up() { hcitool -i hci1 con 2>/dev/null | grep -q ' LE '; }

# ceremony NAME KIND(register|sign-in) CHANNEL [phone-sim flags...]: one QR ceremony, verified
# by the relying party; leaves NAME.events (the bridge's JSON events) behind.
ceremony() {
  local name=$1 kind=$2 channel=$3; shift 3
  rm -f qr.txt "$name".response
  if [ "$kind" = register ]; then
    rp reg-begin "$name".state "$name".options "user-$name"
  else
    rp auth-begin "$name".state "$name".options cred.json
  fi
  local t0; t0=$(date +%s%N)
  timeout 90 hybrid-bridge "${bridge_global[@]}" "$kind" "${bridge_conn[@]}" --options "$name".options \
    --origin https://example.com --channel "$channel" --qr-file qr.txt --advert-timeout 60s \
    --out "$name".response 2> "$name".events &
  local bridge=$!
  if ! waitfor 60 test -s qr.txt; then
    kill $bridge 2>/dev/null; fail "$name" "the bridge wrote no QR code"; cat "$name".events; return 1
  fi
  timeout 90 phone-sim --store phone.json scan "${phone_conn[@]}" --qr-file qr.txt "$@" > "$name".phone 2>&1 &
  local ph=$!
  local rc=0 prc=0
  wait $ph || prc=$?
  # A phone that gave up leaves the bridge nothing to wait for.
  if [ $prc != 0 ]; then
    sleep 3; kill $bridge 2>/dev/null
  fi
  wait $bridge || rc=$?
  echo "$name: $(( ($(date +%s%N) - t0) / 1000000 )) ms" >> timings.txt
  if [ $rc != 0 ]; then
    fail "$name" "the bridge exited $rc: $(grep -v '"event"' "$name".events | tail -3; tail -1 "$name".events)"
    tail -5 "$name".phone
    return 1
  fi
  if [ "$kind" = register ]; then
    rp reg-finish "$name".state "$name".response cred.json ||
      { fail "$name" "the relying party refused the registration"; return 1; }
  else
    rp auth-finish "$name".state "$name".response cred.json ||
      { fail "$name" "the relying party refused the assertion"; return 1; }
  fi
}
# used_channel NAME: the channel the bridge reported.
used_channel() { rp channel "$1".events; }
# advert_to_ctap NAME: ms from the matched advert to the CTAP request going out.
advert_to_ctap() { rp advert-to-ctap "$1".events; }

echo "== section 1: through the relay ($(up) s)"
start_relay || { echo "FAIL setup: the relay did not start"; exit 1; }
ceremony register-relay register relay && [ "$(used_channel register-relay)" = relay ] &&
  pass "register through the relay, verified by python-fido2"
ceremony sign-in-relay sign-in relay && [ "$(used_channel sign-in-relay)" = relay ] &&
  pass "sign in through the relay, verified by python-fido2"

# A linked sign-in: the phone linked during the registration above.
if grep -q '"event":"linked"' register-relay.events; then
  rp auth-begin linked.state linked.options cred.json
  timeout 60 phone-sim --store phone.json linked "${phone_conn[@]}" --sessions 1 > linked.phone 2>&1 &
  ph=$!
  sleep 1
  if timeout 60 hybrid-bridge "${bridge_global[@]}" sign-in "${bridge_conn[@]}" --options linked.options \
      --origin https://example.com --phone phone-sim --out linked.response 2> linked.events &&
     rp auth-finish linked.state linked.response cred.json &&
     [ "$(used_channel linked)" = relay ]; then
    pass "linked sign-in through the relay, verified by python-fido2"
  else
    fail "linked sign-in" "$(tail -2 linked.events)"; tail -5 linked.phone
  fi
  wait $ph
else
  fail "linked sign-in" "the registration stored no link"
fi

echo "== section 2: adverts as phones send them ($(up) s)"
# 27 bytes (the most a legacy advert holds beside nothing else) under a UUID no phone uses;
# the 7 bytes after the 20th are not a CTAP 2.3 map.
ceremony long-advert sign-in relay --advert-uuid 1234 --advert-extra ff001122334455 &&
  pass "a 27-byte advert under 0x1234 with a junk suffix is matched" || true
ceremony long-fde2 sign-in relay --advert-uuid fde2 --advert-extra a0 &&
  pass "a 21-byte advert under 0xfde2 with an empty suffix map is matched" || true

# scan --report on real discovery: a phone advertising for a QR code nobody answers.
rm -f qr.txt
timeout 60 hybrid-bridge "${bridge_global[@]}" register "${bridge_conn[@]}" --rp-id example.com --user-name scan \
  --qr-file qr.txt > /dev/null 2>&1 &
b=$!
waitfor 60 test -s qr.txt; kill "$b" 2>/dev/null; wait "$b" 2>/dev/null
timeout 60 phone-sim --store phone.json scan --bluez --adapter hci0 "${tunnel[@]}" --timeout 40s --qr-file qr.txt \
  --advert-extra 0102 > scan.phone 2>&1 &
ph=$!
# phone-sim needs seconds to start under emulation: scan long enough to hear it.
if timeout 60 hybrid-bridge scan --adapter hci1 --qr "$(cat qr.txt)" --duration 30s \
     --report scan.html --events-out scan.json > scan.out 2>&1 &&
   /usr/bin/python3 -c '
import json, sys
text = open("scan.json").read()
try:
    events = json.loads(text)
except ValueError:
    events = [json.loads(l) for l in text.splitlines() if l.strip()]
if isinstance(events, dict):
    events = events.get("events", [])
ok = [e for e in events if e["verdict"]["kind"] == "decrypted" and e["len"] == 22
      and any("not a CTAP 2.3 suffix" in f for f in e["flags"])]
sys.exit(0 if ok else 1)' && test -s scan.html; then
  pass "scan --report: the phone's 22-byte advert decrypted, its junk suffix reported"
else
  fail "scan --report" "$(tail -3 scan.out; head -c 600 scan.json)"
fi
kill "$ph" 2>/dev/null; wait "$ph" 2>/dev/null

echo "== section 3: the CTAP 2.3 BLE channel ($(up) s)"
ceremony fallback register auto --ble-channel refuse &&
  [ "$(used_channel fallback)" = relay ] && grep -q '"event":"channel_fallback"' fallback.events &&
  pass "a refused PSM falls back to the relay" || { [ $failed = 1 ] || fail "fallback" "$(tail -3 fallback.events)"; }
stop_relay
ceremony register-ble register ble && [ "$(used_channel register-ble)" = ble ] &&
  pass "register over the BLE channel with no relay running, verified by python-fido2" ||
  { [ $failed = 1 ] || fail "register over BLE" "channel $(used_channel register-ble)"; }
# The sign-in follows on the LE link the registration left up (bluetoothd keeps it for its GATT
# client): a second channel on a kept link, as a desktop that signs in again soon after sees.
links_before=$(le_links)
le_link_up && kept=yes || kept=no
ceremony sign-in-ble sign-in ble && [ "$(used_channel sign-in-ble)" = ble ] &&
  pass "sign in over the BLE channel with no relay running, verified by python-fido2" ||
  { [ $failed = 1 ] || fail "sign in over BLE" "channel $(used_channel sign-in-ble)"; }
if [ "$kept" = yes ] && [ "$(le_links)" = "$links_before" ]; then
  pass "the BLE sign-in ran on the LE link the registration left up (no new LE connection)"
else
  fail "BLE channel on a kept link" "link up before the sign-in: $kept; LE connections before $links_before, after $(le_links)"
fi

echo "== benchmark: $bench rounds each, same run ($(up) s)"
: > bench.txt
for i in $(seq 1 "$bench"); do
  start_relay
  if ceremony "bench-relay-$i" sign-in relay; then
    echo "relay ceremony_ms=$(grep "bench-relay-$i:" timings.txt | awk '{print $2}') advert_to_ctap_ms=$(advert_to_ctap "bench-relay-$i")" >> bench.txt
  fi
  stop_relay
  if ceremony "bench-ble-$i" sign-in ble; then
    echo "ble ceremony_ms=$(grep "bench-ble-$i:" timings.txt | awk '{print $2}') advert_to_ctap_ms=$(advert_to_ctap "bench-ble-$i")" >> bench.txt
  fi
done
sed 's/^/bench: /' bench.txt

echo "== doctor against the real bluetoothd ($(up) s)"
doctor_status() {  # doctor_status CHECK_NAME ARGS...: the status doctor gives that check
  local name=$1; shift
  hybrid-bridge doctor --json --only bluetooth --scan-time 1s "$@" > doctor.json 2>/dev/null
  rp doctor-status doctor.json "$name"
}
[ "$(doctor_status 'adapter powered' --adapter hci1)" = pass ] &&
  pass "doctor: controller present and powered" || fail "doctor present" "$(doctor_status 'adapter powered' --adapter hci1)"
[ "$(BRIDGE_CHANNEL=auto doctor_status 'BLE data channel' --adapter hci1)" = pass ] &&
  pass "doctor: the BLE data channel can be used" || fail "doctor BLE channel" "$(doctor_status 'BLE data channel' --adapter hci1)"
btmgmt --index 1 power off > /dev/null
[ "$(doctor_status 'adapter powered' --adapter hci1)" = fail ] &&
  pass "doctor: controller powered off" || fail "doctor powered off" "$(doctor_status 'adapter powered' --adapter hci1)"
btmgmt --index 1 power on > /dev/null
[ "$(doctor_status adapter --adapter hci7)" = fail ] &&
  pass "doctor: a named controller that is missing" || fail "doctor missing" "$(doctor_status adapter --adapter hci7)"
kill "$btvirt"; wait "$btvirt" 2>/dev/null
waitfor 10 test ! -e /sys/class/bluetooth/hci0
[ "$(doctor_status adapter)" = fail ] &&
  pass "doctor: no controller at all" || fail "doctor no controller" "$(doctor_status adapter)"

echo "== done ($(up) s)"
cat timings.txt
exit $failed
