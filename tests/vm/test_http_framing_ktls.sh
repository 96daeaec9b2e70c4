# SPDX-License-Identifier: MIT
# Strict HTTP framing on the kTLS path (libmicrohttpd reads the socket
# itself): every case of tests/integration/test_http_framing.py over TLS 1.2
# and 1.3 with kTLS. The checks are in http_framing_ktls.py.
. "$(dirname "$0")/lib.sh"
VM_WORK=$VM_WORK /usr/bin/python3 tests/vm/http_framing_ktls.py
