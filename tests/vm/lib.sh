# SPDX-License-Identifier: MIT
# Helpers for the guest test scripts (sourced by tests/vm/test_*.sh; bash).
# Every check prints exactly one line "VMTEST: PASS name" or
# "VMTEST: FAIL name: why"; tests/vm/run.sh counts them.

VM_WORK=${VM_WORK:-/tmp/vmtest}
BUILD=${VMTEST_BUILD:-build}
mkdir -p "$VM_WORK"

pass() { echo "VMTEST: PASS $1"; }
fail() {
	local name=$1
	shift
	echo "VMTEST: FAIL $name: $*"
}
# check NAME COMMAND...: PASS when the command succeeds.
check() {
	local name=$1
	shift
	if "$@"; then pass "$name"; else fail "$name" "command failed: $*"; fi
}
note() { echo "  $*"; }

# tls_stat NAME: one counter from /proc/net/tls_stat (0 if absent).
tls_stat() {
	awk -v k="$1" '$1 == k { print $2; f = 1 } END { if (!f) print 0 }' \
		/proc/net/tls_stat 2>/dev/null || echo 0
}
# tls_snap: "TX RX" software kTLS contexts created so far.
tls_snap() { echo "$(tls_stat TlsTxSw) $(tls_stat TlsRxSw)"; }

# wait_port PORT [SECONDS]: until a TCP socket listens on PORT. Looks at
# the socket table instead of connecting, so a one-shot server does not
# spend its only accept on the probe.
wait_port() {
	local port=$1 n=$((${2:-20} * 10))
	while [ "$n" -gt 0 ]; do
		if [ -n "$(ss -Hltn "sport = :$port")" ]; then
			return 0
		fi
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}

# make_file PATH SIZE_BYTES: random content, on tmpfs (guest memory).
make_file() {
	head -c "$2" /dev/urandom >"$1"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }

# vm_certs DIR: a quick ECDSA P-256 root CA, server (localhost) and client
# certificate, for the tests that do not use scripts/gen-certs.sh.
vm_certs() {
	local d=$1
	[ -f "$d/client.crt" ] && return 0
	mkdir -p "$d"
	(
		cd "$d" || exit 1
		openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
			-nodes -keyout ca.key -out ca.crt -days 2 \
			-subj "/CN=vm test CA" 2>/dev/null &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
				-nodes -keyout server.key -out server.csr \
				-subj "/CN=localhost" 2>/dev/null &&
			openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key \
				-CAcreateserial -days 2 -out server.crt \
				-extfile <(printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n') 2>/dev/null &&
			openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
				-nodes -keyout client.key -out client.csr \
				-subj "/CN=vm client" 2>/dev/null &&
			openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key \
				-CAcreateserial -days 2 -out client.crt \
				-extfile <(printf 'extendedKeyUsage=clientAuth\n') 2>/dev/null
	)
}

# An OpenSSL config that turns kTLS on for every SSL_CTX (system_default):
# what the stock tools and nginx use.
ktls_openssl_conf() {
	local f=$VM_WORK/openssl-ktls.cnf
	cat >"$f" <<'EOF'
openssl_conf = openssl_init
[openssl_init]
ssl_conf = ssl_sect
[ssl_sect]
system_default = system_default_sect
[system_default_sect]
Options = KTLS
EOF
	echo "$f"
}

# kill_wait PID: stop a server this test started.
kill_wait() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}
