#!/bin/sh
# SPDX-License-Identifier: MIT
# Generate the demo and test PKI of mtlsgw with the openssl CLI.
#
#   scripts/gen-certs.sh [--rsa] [--force] [DIR]      (DIR defaults to certs/)
#
# ECDSA P-256 keys by default, RSA 2048 with --rsa. Root CA -> intermediate
# CA (pathlen:0) -> leaves. The file names are an interface (tests, docs and
# conf/mtlsgw.conf use them); certs/README.md describes each one.
#
# Idempotent: when every file is already there it says so and does nothing.
# An existing private key is never overwritten unless --force is given (a
# partial set is completed around the keys that exist). The openssl "ca"
# databases live in DIR/.ca/.
set -eu

usage() {
	echo "usage: $0 [--rsa] [--force] [DIR]" >&2
	exit 2
}

ALG=ec
FORCE=0
DIR=
while [ $# -gt 0 ]; do
	case $1 in
	--rsa) ALG=rsa ;;
	--ec) ALG=ec ;;
	--force) FORCE=1 ;;
	-h | --help) usage ;;
	-*) echo "$0: unknown option $1" >&2; usage ;;
	*) [ -z "$DIR" ] || usage; DIR=$1 ;;
	esac
	shift
done
if [ -z "$DIR" ]; then
	DIR="$(cd "$(dirname "$0")/.." && pwd)/certs"
fi

command -v openssl >/dev/null || { echo "$0: openssl not found" >&2; exit 1; }

# Everything this script produces; all present => nothing to do.
KEYS="ca.key intermediate.key server.key client1.key client2.key
unknown-ca-root.key unknown-ca.key expired.key revoked.key server-eku.key
deep-intermediate.key deep-sub1.key deep-sub2.key deep.key ocsp.key"
CERTS="ca.crt intermediate.crt client-ca.pem crl.pem server.crt client1.crt
client2.crt unknown-ca-root.crt unknown-ca.crt expired.crt revoked.crt
server-eku.crt deep.crt ocsp.crt"

mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)

complete=1
for f in $KEYS $CERTS; do
	[ -s "$DIR/$f" ] || complete=0
done
if [ "$complete" -eq 1 ] && [ "$FORCE" -eq 0 ]; then
	echo "gen-certs: certificates already in $DIR, nothing to do (--force regenerates)"
	exit 0
fi

umask 077
CA="$DIR/.ca"
rm -rf "$CA"
mkdir -p "$CA"
if [ "$FORCE" -eq 1 ]; then
	for f in $KEYS $CERTS; do rm -f "$DIR/$f"; done
fi

# --- configuration shared by req, ca and x509
cat >"$CA/req.cnf" <<'EOF'
# request config: the subject comes from -subj, extensions from ext.cnf
[req]
distinguished_name = dn
prompt = no
[dn]
EOF

if [ "$ALG" = rsa ]; then
	LEAF_KU="critical, digitalSignature, keyEncipherment"
else
	LEAF_KU="critical, digitalSignature"
fi

cat >"$CA/ext.cnf" <<EOF
[root]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[intermediate]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

# The "deep" chain: a second intermediate under the root with room for two
# more CA levels, so that its only fault is its length (verify_depth 2).
[deep_intermediate]
basicConstraints = critical, CA:true, pathlen:2
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[deep_sub1]
basicConstraints = critical, CA:true, pathlen:1
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[deep_sub2]
basicConstraints = critical, CA:true, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always

[server]
basicConstraints = critical, CA:false
keyUsage = $LEAF_KU
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1, IP:::1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

# The intermediate's delegated OCSP responder (openssl ocsp -rsigner).
[ocsp_signer]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = critical, OCSPSigning
noCheck = ignored
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[server_eku]
basicConstraints = critical, CA:false
keyUsage = $LEAF_KU
extendedKeyUsage = serverAuth
subjectAltName = DNS:server-eku.mtlsgw.test
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF

# One client section per name: EKU clientAuth, a SPIFFE URI and a DNS SAN,
# and where to ask OCSP (AIA): a fixed loopback port for the demo
# (scripts/run-demo.sh does not start a responder; tests set
# ocsp_responder to the responder they start on a free port).
OCSP_URL="http://127.0.0.1:8888/"
for name in client1 client2 unknown-ca expired revoked deep; do
	cat >>"$CA/ext.cnf" <<EOF

[client_$name]
basicConstraints = critical, CA:false
keyUsage = $LEAF_KU
extendedKeyUsage = clientAuth
subjectAltName = URI:spiffe://mtlsgw.test/$name, DNS:$name.mtlsgw.test
authorityInfoAccess = OCSP;URI:$OCSP_URL
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EOF
done

# --- helpers
O="/O=mtlsgw demo"

genkey() { # name
	key="$DIR/$1.key"
	if [ -s "$key" ]; then
		echo "gen-certs: keeping existing $key"
	elif [ "$ALG" = rsa ]; then
		openssl genpkey -quiet -algorithm RSA -pkeyopt rsa_keygen_bits:2048 \
			-out "$key"
	else
		openssl genpkey -quiet -algorithm EC \
			-pkeyopt ec_paramgen_curve:P-256 \
			-pkeyopt ec_param_enc:named_curve -out "$key"
	fi
	chmod 600 "$key"
}

# An openssl "ca" database for the CA NAME, whose key/cert are in DIR.
ca_init() { # name
	d="$CA/$1"
	mkdir -p "$d/newcerts"
	: >"$d/index.txt"
	echo "unique_subject = no" >"$d/index.txt.attr"
	openssl rand -hex 16 >"$d/serial"
	echo 1000 >"$d/crlnumber"
	cat >"$d/ca.cnf" <<EOF
[ca]
default_ca = this
[this]
dir = $d
database = \$dir/index.txt
new_certs_dir = \$dir/newcerts
serial = \$dir/serial
crlnumber = \$dir/crlnumber
certificate = $DIR/$1.crt
private_key = $DIR/$1.key
default_md = sha256
default_days = 825
default_crl_days = 3650
policy = policy_any
preserve = yes
email_in_dn = no
copy_extensions = none
unique_subject = no
crl_extensions = crl_ext
[policy_any]
organizationName = optional
commonName = supplied
[crl_ext]
authorityKeyIdentifier = keyid:always
EOF
}

# Sign NAME's key with CA into NAME.crt using extension section EXT; extra
# arguments go to "openssl ca" (-days, -startdate, -enddate).
ca_sign() { # ca name subject ext [args...]
	ca=$1 name=$2 subj=$3 ext=$4
	shift 4
	openssl req -new -config "$CA/req.cnf" -key "$DIR/$name.key" \
		-subj "$subj" -out "$CA/$name.csr"
	openssl ca -batch -notext -config "$CA/$ca/ca.cnf" \
		-extfile "$CA/ext.cnf" -extensions "$ext" \
		-in "$CA/$name.csr" -out "$DIR/$name.crt" "$@" 2>"$CA/$name.log" || {
		cat "$CA/$name.log" >&2
		exit 1
	}
}

echo "gen-certs: writing $ALG certificates to $DIR"
for k in $KEYS; do genkey "${k%.key}"; done

# --- root and intermediate
cat >>"$CA/req.cnf" <<'EOF'
[root_x509]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
openssl req -new -x509 -config "$CA/req.cnf" -key "$DIR/ca.key" \
	-subj "$O/CN=mtlsgw demo root CA" -extensions root_x509 -days 3650 \
	-sha256 -out "$DIR/ca.crt"
ca_init ca
ca_sign ca intermediate "$O/CN=mtlsgw demo intermediate CA" intermediate \
	-days 3650
ca_init intermediate

# --- leaves signed by the intermediate
ca_sign intermediate server "$O/CN=localhost" server
ca_sign intermediate client1 "$O/CN=client1" client_client1
ca_sign intermediate client2 "$O/CN=client2" client_client2
ca_sign intermediate server-eku "$O/CN=server-eku" server_eku
ca_sign intermediate revoked "$O/CN=revoked" client_revoked
ca_sign intermediate ocsp "$O/CN=mtlsgw demo intermediate OCSP responder" \
	ocsp_signer
# A fixed window in the past: really expired, whatever today is.
ca_sign intermediate expired "$O/CN=expired" client_expired \
	-startdate 20200101000000Z -enddate 20210101000000Z

# --- revocation: the intermediate lists "revoked", the root lists nothing
openssl ca -batch -config "$CA/intermediate/ca.cnf" -revoke "$DIR/revoked.crt" \
	-crl_reason keyCompromise 2>"$CA/revoke.log" || {
	cat "$CA/revoke.log" >&2
	exit 1
}
openssl ca -batch -config "$CA/intermediate/ca.cnf" -gencrl -crldays 3650 \
	-out "$CA/intermediate.crl" 2>/dev/null
openssl ca -batch -config "$CA/ca/ca.cnf" -gencrl -crldays 3650 \
	-out "$CA/ca.crl" 2>/dev/null

# --- unknown-ca: an unrelated self-signed root signs a client certificate
cat >>"$CA/req.cnf" <<'EOF'
[unknown_root_x509]
basicConstraints = critical, CA:true
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid:always
EOF
openssl req -new -x509 -config "$CA/req.cnf" -key "$DIR/unknown-ca-root.key" \
	-subj "/O=somebody else/CN=unrelated root CA" \
	-extensions unknown_root_x509 -days 3650 -sha256 \
	-out "$DIR/unknown-ca-root.crt"
ca_init unknown-ca-root
ca_sign unknown-ca-root unknown-ca "$O/CN=unknown-ca" client_unknown-ca

# --- deep: root -> deep-intermediate -> deep-sub1 -> deep-sub2 -> leaf.
# The gateway trusts only root + intermediate, so the client sends the leaf
# and its three intermediates (all in deep.crt). OpenSSL's verify depth
# counts intermediates (depth 2 allows leaf + 2 CAs + trust anchor): three
# is one too many, whichever way "depth" is read. Nothing else is wrong
# with this chain (pathlen constraints, EKU and dates are all fine).
ca_sign ca deep-intermediate "$O/CN=mtlsgw demo deep intermediate CA" \
	deep_intermediate -days 3650
ca_init deep-intermediate
ca_sign deep-intermediate deep-sub1 "$O/CN=mtlsgw demo deep sub CA 1" \
	deep_sub1 -days 3650
ca_init deep-sub1
ca_sign deep-sub1 deep-sub2 "$O/CN=mtlsgw demo deep sub CA 2" deep_sub2 \
	-days 3650
ca_init deep-sub2
ca_sign deep-sub2 deep "$O/CN=deep" client_deep
cp "$DIR/deep.crt" "$CA/deep-leaf.crt"
cat "$CA/deep-leaf.crt" "$DIR/deep-sub2.crt" "$DIR/deep-sub1.crt" \
	"$DIR/deep-intermediate.crt" >"$DIR/deep.crt"

# --- bundles
umask 022
cat "$DIR/server.crt" "$DIR/intermediate.crt" >"$CA/server-chain.crt"
mv "$CA/server-chain.crt" "$DIR/server.crt"
cat "$DIR/ca.crt" "$DIR/intermediate.crt" >"$DIR/client-ca.pem"
# The deep chain's CAs publish (empty) CRLs too, so that a verifier that
# checks every CA's CRL finds them and only the depth can refuse "deep".
for c in deep-intermediate deep-sub1 deep-sub2; do
	openssl ca -batch -config "$CA/$c/ca.cnf" -gencrl -crldays 3650 \
		-out "$CA/$c.crl" 2>/dev/null
done
cat "$CA/intermediate.crl" "$CA/ca.crl" "$CA/deep-intermediate.crl" \
	"$CA/deep-sub1.crl" "$CA/deep-sub2.crl" >"$DIR/crl.pem"
rm -f "$DIR/deep-sub1.crt" "$DIR/deep-sub2.crt" "$DIR/deep-intermediate.crt"
chmod 644 "$DIR"/*.crt "$DIR"/*.pem
chmod 600 "$DIR"/*.key

# --- self-check: what the gateway will decide, with the CLI's verifier
v() { # expected-substring cert [extra args]
	want=$1 crt=$2
	shift 2
	out=$(openssl verify -CAfile "$DIR/client-ca.pem" -CRLfile "$DIR/crl.pem" \
		-crl_check_all -purpose sslclient -verify_depth 2 "$@" "$crt" 2>&1 || true)
	case $out in
	*"$want"*) ;;
	*) echo "gen-certs: self-check failed for $crt: $out" >&2; exit 1 ;;
	esac
}
v OK "$DIR/client1.crt"
v OK "$DIR/client2.crt"
v "certificate has expired" "$DIR/expired.crt"
v "certificate revoked" "$DIR/revoked.crt"
v "unsuitable certificate purpose" "$DIR/server-eku.crt"
v "unable to get local issuer certificate" "$DIR/unknown-ca.crt"
v "certificate chain too long" "$DIR/deep.crt" -untrusted "$DIR/deep.crt"
# ... and only its length: with a larger depth it verifies.
v OK "$DIR/deep.crt" -untrusted "$DIR/deep.crt" -verify_depth 3
echo "gen-certs: done ($DIR)"
