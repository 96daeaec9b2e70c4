# SPDX-License-Identifier: MIT
# Proves the VM itself: the guest kernel offers the tls ULP, and stock
# OpenSSL 3.0 (openssl s_server with "Options = KTLS", -sendfile) gets kTLS.
# TLS 1.2: TX and RX in the kernel (TlsTxSw and TlsRxSw rise). TLS 1.3: TX
# only with OpenSSL < 3.2 (RX is reported, not asserted: the gateway
# installs TLS 1.3 RX itself, see test_ktls_module.sh).
. "$(dirname "$0")/lib.sh"

if grep -qw tls /proc/sys/net/ipv4/tcp_available_ulp; then
	pass "stock-ulp-available"
else
	fail "stock-ulp-available" "tcp_available_ulp: $(cat /proc/sys/net/ipv4/tcp_available_ulp)"
fi

certs=$VM_WORK/certs
vm_certs "$certs" || { fail "stock-certs" "openssl could not make certificates"; exit 0; }
cnf=$(ktls_openssl_conf)
www=$VM_WORK/stock-www
mkdir -p "$www"
make_file "$www/f1m" $((1024 * 1024))
want=$(sha "$www/f1m")

port=9443
for v in 1.2 1.3; do
	before=$(tls_snap)
	(cd "$www" && OPENSSL_CONF=$cnf exec openssl s_server -quiet \
		-accept "127.0.0.1:$port" -cert "$certs/server.crt" \
		-key "$certs/server.key" "-tls${v/./_}" -WWW -sendfile \
		-naccept 1) >"$VM_WORK/s_server-$v.log" 2>&1 &
	spid=$!
	if ! wait_port "$port"; then
		fail "stock-tls$v-download" "s_server did not listen"
		kill_wait "$spid"
		continue
	fi
	# The client is curl without the kTLS config: only the server's
	# kernel contexts are counted.
	got=$(curl -sS --cacert "$certs/ca.crt" "--tlsv$v" --tls-max "$v" \
		"https://localhost:$port/f1m" | sha256sum | cut -d' ' -f1)
	kill_wait "$spid"
	port=$((port + 1))
	read -r tx0 rx0 <<<"$before"
	read -r tx1 rx1 <<<"$(tls_snap)"
	note "TLS $v: TlsTxSw +$((tx1 - tx0)), TlsRxSw +$((rx1 - rx0))"
	if [ "$got" = "$want" ]; then
		pass "stock-tls$v-download-byte-exact"
	else
		fail "stock-tls$v-download-byte-exact" "sha256 $got, want $want"
		sed 's/^/    s_server: /' "$VM_WORK/s_server-$v.log" | tail -5
	fi
	if [ $((tx1 - tx0)) -ge 1 ]; then
		pass "stock-tls$v-ktls-tx"
	else
		fail "stock-tls$v-ktls-tx" "TlsTxSw did not rise"
	fi
	if [ "$v" = 1.2 ]; then
		if [ $((rx1 - rx0)) -ge 1 ]; then
			pass "stock-tls$v-ktls-rx"
		else
			fail "stock-tls$v-ktls-rx" "TlsRxSw did not rise"
		fi
	fi
done
exit 0
