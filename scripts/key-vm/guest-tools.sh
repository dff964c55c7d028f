#!/usr/bin/env bash
# Guest (scripts/vm/run.sh): the phone as a USB security key under a real kernel. The relay on
# loopback, the real `hybrid-bridge key` on /dev/uhid, and phone-sim as the phone, which scans
# each QR code the key writes to ./qr.txt. Then libfido2's tools, python-fido2, OpenSSH, a
# linked phone, and every CTAPHID error path through hidraw. One PASS/FAIL line per check;
# the exit status is the number of failures (0: all passed).
#
#   guest-tools.sh BIN_DIR     (BIN_DIR holds hybrid-bridge, phone-sim and tunnel-server)
set -u
bin=$1
here=$VM_SCRIPT_DIR
export PATH="$bin:$PATH" RUST_LOG=warn,bridge=info
relay=ws://127.0.0.1:8080
rp=key.hybrid-bridge.test
fails=0
up() { cut -d' ' -f1 /proc/uptime; }
pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }
b64rand() { head -c "$1" /dev/urandom | base64 -w0; }
stage() { echo "T $(up) $*"; }
# The relay, the phone driver and the key end with the suite, so the next one starts clean.
trap 'kill $(jobs -p) 2>/dev/null' EXIT

stage guest-shell
tunnel-server --listen 127.0.0.1:8080 >relay.log 2>&1 &

# The phone: for each new QR code, scan it (phone.mode: scan), leave it (ignore), or wait for
# its person's approval forever (prompt: a phone that can vanish mid-ceremony).
echo scan >phone.mode
phone_driver() {
  local last="" url mode
  while :; do
    url=$(cat qr.txt 2>/dev/null)
    if [ -n "$url" ] && [ "$url" != "$last" ]; then
      last=$url
      mode=$(cat phone.mode)
      echo "[$(up)] phone: QR code, mode $mode" >>phone.log
      case $mode in
        scan)
          phone-sim --store phone.json scan --qr "$url" --tunnel-override $relay \
            --advert-file adverts.txt --attestation packed >>phone.log 2>&1 &
          echo $! >phone.pid
          wait $! ;;
        prompt)
          sleep 600 | phone-sim --store phone.json scan --qr "$url" --tunnel-override $relay \
            --advert-file adverts.txt --approve prompt >>phone.log 2>&1 &
          echo $! >phone.pid ;;
      esac
    fi
    sleep 0.05
  done
}
phone_driver &

key_pid=""
start_key() {
  hybrid-bridge --links-file links.json key --no-window --no-qr --tunnel-override $relay \
    --advert-file adverts.txt --qr-file qr.txt "$@" >>key.log 2>&1 &
  key_pid=$!
  for _ in $(seq 300); do
    dev=$(fido2-token -L 2>/dev/null | grep -i 'vendor=0x1209, product=0xf1d0' | cut -d: -f1)
    [ -n "$dev" ] && return 0
    sleep 0.1
  done
  return 1
}
stop_key() {
  kill "$key_pid" 2>/dev/null
  wait "$key_pid" 2>/dev/null
  for _ in $(seq 50); do
    fido2-token -L 2>/dev/null | grep -qi 'vendor=0x1209, product=0xf1d0' || return 0
    sleep 0.1
  done
}

if start_key; then
  pass "fido2-token -L lists the key: $(fido2-token -L | grep -i 0x1209)"
else
  fail "fido2-token -L does not list the key"; cat key.log; exit 1
fi
stage key-ready

fido2-token -I "$dev" >token-info.txt 2>&1
if grep -q 'version strings: FIDO_2_0$' token-info.txt && grep -q 'maxmsgsiz: 7609' token-info.txt &&
  grep -q 'maxcredcntlst: 40' token-info.txt && grep -q 'maxcredlen: 128' token-info.txt &&
  grep -q 'options: rk, up, uv, noplat$' token-info.txt &&
  grep -q 'caps: 0x0d (wink, cbor, nomsg)' token-info.txt; then
  pass "fido2-token -I reads the key's getInfo"
else
  fail "fido2-token -I"; cat token-info.txt
fi
sed 's/^/    /' token-info.txt

if hybrid-bridge --links-file links.json key status >status.txt 2>&1 && grep -q 'key: running' status.txt; then
  pass "hybrid-bridge key status: $(head -1 status.txt)"
else
  fail "hybrid-bridge key status"; cat status.txt
fi

stage fido2-cred
printf '%s\n' "$(b64rand 32)" $rp alice "$(b64rand 16)" >cred.in
if fido2-cred -M -i cred.in -o cred.out "$dev" es256 >fido2-cred.log 2>&1; then
  pass "fido2-cred -M registers on the phone (packed attestation)"
else
  fail "fido2-cred -M"; cat fido2-cred.log
fi
printf '%s\n' "$(b64rand 32)" $rp "$(sed -n 5p cred.out)" >assert.in
if fido2-assert -G -p -i assert.in -o assert.out "$dev" >fido2-assert.log 2>&1; then
  pass "fido2-assert -G -p signs with the phone"
else
  fail "fido2-assert -G"; cat fido2-assert.log
fi
if python3 "$here/verify_fido2_tools.py" cred.out assert.out $rp >verify.log 2>&1; then
  pass "python-fido2 verifies fido2-cred's attestation and fido2-assert's signature"
else
  fail "verifying the fido2 tools' results"
fi
sed 's/^/    /' verify.log

stage python-fido2
if python3 "$here/fido2_client.py" >fido2-client.log 2>&1; then
  pass "python-fido2 Fido2Client registers and signs in (allow list and discoverable)"
else
  fail "python-fido2 Fido2Client"
fi
sed 's/^/    /' fido2-client.log

stage openssh
echo "signed by a key on the phone" >msg.txt
if ssh-keygen -q -t ecdsa-sk -f sk -N '' -C phone-key >ssh-keygen.log 2>&1; then
  pass "ssh-keygen -t ecdsa-sk makes a key on the phone"
else
  fail "ssh-keygen -t ecdsa-sk"; cat ssh-keygen.log
fi
echo "me $(cat sk.pub 2>/dev/null)" >allowed_signers
if ssh-keygen -Y sign -f sk -n file msg.txt >>ssh-keygen.log 2>&1 &&
  ssh-keygen -Y verify -f allowed_signers -I me -n file -s msg.txt.sig <msg.txt >>ssh-keygen.log 2>&1; then
  pass "ssh-keygen -Y sign / -Y verify with the phone's key"
else
  fail "ssh-keygen -Y sign / verify"; cat ssh-keygen.log
fi

stage linked-phone
name=$(hybrid-bridge --links-file links.json phones list 2>/dev/null | head -1 | cut -f1)
if [ -n "$name" ]; then
  pass "a QR ceremony linked the phone: $name"
  stop_key
  start_key --phone "$name"
  phone-sim --store phone.json linked --tunnel-override $relay --advert-file adverts.txt \
    --attestation packed --sessions 1 >>phone.log 2>&1 &
  linked_pid=$!
  before=$(md5sum <qr.txt)
  printf '%s\n' "$(b64rand 32)" $rp "$(sed -n 5p cred.out)" >assert2.in
  if fido2-assert -G -p -i assert2.in -o assert2.out "$dev" >fido2-assert.log 2>&1 &&
    python3 "$here/verify_fido2_tools.py" cred.out assert2.out $rp >/dev/null 2>&1 &&
    [ "$(md5sum <qr.txt)" = "$before" ]; then
    pass "the linked phone ($name) signs without a QR code (--phone)"
  else
    fail "signing with the linked phone"; cat fido2-assert.log
  fi
  hybrid-bridge --links-file links.json key status | grep '^phone' | sed 's/^/    /'
  kill "$linked_pid" 2>/dev/null
  stop_key
  start_key
else
  fail "no linked phone after the QR ceremonies"
fi

stage ctaphid
python3 "$here/hid_errors.py" >hid.log 2>&1
cat hid.log
fails=$((fails + $(grep -c '^FAIL' hid.log)))

stage 'done'
if dmesg | grep -q 'Output queue is full'; then
  echo "    the kernel's uhid queue (32 reports) overflowed $(dmesg | grep -c 'Output queue is full') times"
fi
echo "--- what the key was asked (key.log)"
grep -E 'INFO .*(answered by the key|for the phone|did not answer|cancelled)' key.log |
  sed -e 's/^.*INFO bridge::key::service: //' -e 's/ cid="[0-9a-f]*"//' -e 's/ bytes=[0-9]*//' |
  cut -c1-150 | sort | uniq -c | sort -rn
if [ "$fails" -gt 0 ]; then
  echo "--- key.log"; tail -50 key.log
  echo "--- phone.log"; tail -30 phone.log
fi
stop_key
echo "security key suite: $fails failed"
exit "$fails"
