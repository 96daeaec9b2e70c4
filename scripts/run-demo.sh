#!/bin/sh
# SPDX-License-Identifier: MIT
# Start the demo gateway in the foreground (`make run` calls this after
# scripts/gen-certs.sh). Prints the curl commands to try, then execs
# build/mtlsgw with conf/mtlsgw.conf; Ctrl-C stops it.
set -eu
cd "$(dirname "$0")/.."

BIN=${MTLSGW_BIN:-build/mtlsgw}
CONF=${MTLSGW_CONF:-conf/mtlsgw.conf}
URL=https://localhost:8443

[ -x "$BIN" ] || { echo "run-demo: $BIN not built (make build/mtlsgw)" >&2; exit 1; }
[ -s certs/server.crt ] || { echo "run-demo: no certificates (scripts/gen-certs.sh)" >&2; exit 1; }

cat <<EOF
mtlsgw demo on $URL (config $CONF). In another terminal, try:

  # open pages: 200 without a certificate
  curl --cacert certs/ca.crt $URL/main.html
  curl --cacert certs/ca.crt $URL/unprotected/unprotected.html
  curl --cacert certs/ca.crt $URL/health

  # protected: 403 without a certificate, 200 with client1's
  curl --cacert certs/ca.crt $URL/protected/protected.html
  curl --cacert certs/ca.crt --cert certs/client1.crt --key certs/client1.key \\
       $URL/protected/protected.html
  curl --cacert certs/ca.crt --cert certs/client1.crt --key certs/client1.key \\
       $URL/protected/confidential.html

  # a certificate that does not verify fails the TLS handshake (over TLS 1.3
  # curl may report the alert as error 56 or a closed connection; add
  # --tls-max 1.2 to see the alert named during the handshake itself)
  curl --cacert certs/ca.crt --cert certs/unknown-ca.crt --key certs/unknown-ca.key $URL/main.html
  curl --cacert certs/ca.crt --cert certs/expired.crt --key certs/expired.key $URL/main.html
  curl --cacert certs/ca.crt --cert certs/revoked.crt --key certs/revoked.key $URL/main.html

  # old protocols are refused
  openssl s_client -connect 127.0.0.1:8443 -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null

Access log (JSON lines) and errors go to this terminal. Ctrl-C stops the gateway.

EOF
exec "$BIN" -c "$CONF"
