# SPDX-License-Identifier: MIT
# Proves daemon/ktls.c on its own, before the daemon uses it: a small server
# (tests/vm/ktls_server.c) does the mTLS handshake, calls
# ktls_after_handshake(), then plain read()/write()/sendfile() on the TCP
# socket; a Python client checks an upload (RX) and a download (TX)
# byte-exact and resumes the session (ticket sent while TX is in the
# kernel). For TLS 1.2 and 1.3 with each AEAD: both connections must report
# ktls=1 and /proc/net/tls_stat must show one TX and one RX software
# context per connection. Then the refusals: OpenSSL holding a decrypted
# record, and ktls off, both fall back to SSL and still transfer correctly.
. "$(dirname "$0")/lib.sh"

srv=$BUILD/vm/ktls_server
if [ ! -x "$srv" ]; then
	fail "ktls-module-build" "$srv missing (see the harness's build output)"
	exit 0
fi
certs=$VM_WORK/certs
vm_certs "$certs" || { fail "ktls-module-certs" "openssl could not make certificates"; exit 0; }
file=$VM_WORK/ktls-module-1m
make_file "$file" $((1024 * 1024))
want=$(sha "$file")
port=9600

# run_case NAME SERVER_ARGS -- CLIENT_ARGS: server for 2 connections (or 1
# without --resume); leaves its log in $VM_WORK/NAME.log, the client's in
# NAME.client, the tls_stat deltas in $dtx/$drx. Returns the client status.
run_case() {
	local name=$1 sargs=() cargs=() n=1 rc
	shift
	while [ $# -gt 0 ] && [ "$1" != -- ]; do sargs+=("$1"); shift; done
	shift
	cargs=("$@")
	[[ " ${cargs[*]} " == *" --resume "* ]] && n=2
	port=$((port + 1))
	"$srv" -p "$port" -c "$certs/server.crt" -k "$certs/server.key" \
		-C "$certs/ca.crt" -f "$file" -n "$n" "${sargs[@]}" \
		>"$VM_WORK/$name.log" 2>&1 &
	local spid=$!
	if ! wait_port "$port"; then
		kill_wait "$spid"
		echo "server did not listen" >"$VM_WORK/$name.client"
		return 1
	fi
	local before
	before=$(tls_snap)
	timeout 300 /usr/bin/python3 tests/vm/ktls_client.py --port "$port" --ca "$certs/ca.crt" \
		--cert "$certs/client.crt" --key "$certs/client.key" \
		--down-sha "$want" "${cargs[@]}" >"$VM_WORK/$name.client" 2>&1
	rc=$?
	# The server exits after its connections; give it a moment.
	timeout 20 tail --pid="$spid" -f /dev/null
	kill_wait "$spid"
	local tx0 rx0 tx1 rx1
	read -r tx0 rx0 <<<"$before"
	read -r tx1 rx1 <<<"$(tls_snap)"
	dtx=$((tx1 - tx0))
	drx=$((rx1 - rx0))
	return $rc
}

show() { # NAME: both logs, indented, for a failure
	sed 's/^/    server: /' "$VM_WORK/$1.log"
	sed 's/^/    client: /' "$VM_WORK/$1.client"
}

for v in 1.2 1.3; do
	for c in AES128-GCM AES256-GCM CHACHA20; do
		case $v-$c in
		1.2-AES128-GCM) s=ECDHE-ECDSA-AES128-GCM-SHA256 ;;
		1.2-AES256-GCM) s=ECDHE-ECDSA-AES256-GCM-SHA384 ;;
		1.2-CHACHA20) s=ECDHE-ECDSA-CHACHA20-POLY1305 ;;
		1.3-AES128-GCM) s=TLS_AES_128_GCM_SHA256 ;;
		1.3-AES256-GCM) s=TLS_AES_256_GCM_SHA384 ;;
		1.3-CHACHA20) s=TLS_CHACHA20_POLY1305_SHA256 ;;
		esac
		name=module-tls$v-$c
		if ! run_case "$name" -v "$v" -s "$s" -- --version "$v" --resume; then
			fail "$name-transfer" "client failed"
			show "$name"
			continue
		fi
		pass "$name-transfer-byte-exact-and-resumed"
		[ "$v-$c" = 1.2-AES128-GCM ] && note "$(grep '^probe:' "$VM_WORK/$name.log")"
		k=$(grep -c 'ktls=1 ' "$VM_WORK/$name.log")
		if [ "$k" -eq 2 ] && grep -q '^conn 1: .*resumed=1 peer=vm client ktls=1' "$VM_WORK/$name.log"; then
			pass "$name-ktls-both-connections"
		else
			fail "$name-ktls-both-connections" "server did not report ktls=1 twice (resumed, same peer)"
			show "$name"
		fi
		if [ "$dtx" -eq 2 ] && [ "$drx" -eq 2 ]; then
			pass "$name-tls_stat-tx2-rx2"
		else
			fail "$name-tls_stat-tx2-rx2" "TlsTxSw +$dtx, TlsRxSw +$drx"
		fi
	done
done

# OpenSSL holds a decrypted record: sequence 0 would be wrong, so no RX.
name=module-tls1.3-buffered
if run_case "$name" -v 1.3 -P -- --version 1.3 &&
	grep -q 'ktls=0 reason=openssl buffered data' "$VM_WORK/$name.log" &&
	[ "$drx" -eq 0 ]; then
	pass "$name-falls-back"
else
	fail "$name-falls-back" "want ktls=0 (openssl buffered data), no RX context, transfer ok (RX +$drx)"
	show "$name"
fi

# After the hand-off the kernel refuses non-data records (recv: EIO); the
# server names them with ktls_close_reason(): a TLS 1.3 KeyUpdate
# (s_client's "k" command) and a close_notify (s_client at end of input).
name=module-tls1.3-control-records
port=$((port + 1))
"$srv" -p "$port" -c "$certs/server.crt" -k "$certs/server.key" \
	-C "$certs/ca.crt" -f "$file" -n 2 -v 1.3 >"$VM_WORK/$name.log" 2>&1 &
spid=$!
if wait_port "$port"; then
	s_client() {
		timeout 60 openssl s_client -connect "127.0.0.1:$port" \
			-servername localhost -CAfile "$certs/ca.crt" \
			-cert "$certs/client.crt" -key "$certs/client.key"
	}
	(sleep 3; echo k; sleep 3) | s_client >"$VM_WORK/$name.client" 2>&1
	s_client </dev/null >>"$VM_WORK/$name.client" 2>&1
fi
timeout 20 tail --pid="$spid" -f /dev/null
kill_wait "$spid"
if grep -q '^end: key update' "$VM_WORK/$name.log"; then
	pass "$name-keyupdate-named"
else
	fail "$name-keyupdate-named" "server did not report 'end: key update'"
	show "$name"
fi
if grep -q '^end: close_notify' "$VM_WORK/$name.log"; then
	pass "$name-close-notify-named"
else
	fail "$name-close-notify-named" "server did not report 'end: close_notify'"
	show "$name"
fi

# ktls off: nothing in the kernel, SSL does the work.
name=module-ktls-off
if run_case "$name" -v 1.3 -o -- --version 1.3 &&
	grep -q 'ktls=0 reason=ktls off' "$VM_WORK/$name.log" &&
	[ "$dtx" -eq 0 ] && [ "$drx" -eq 0 ]; then
	pass "$name-userspace"
else
	fail "$name-userspace" "want ktls=0 (ktls off), no kernel contexts (TX +$dtx RX +$drx)"
	show "$name"
fi
exit 0
