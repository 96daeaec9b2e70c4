# SPDX-License-Identifier: MIT
# The real gateway (build/mtlsgw) on kTLS: TLS 1.2/1.3 x AES-128-GCM,
# AES-256-GCM, ChaCha20-Poly1305, downloads and a POST byte-exact, keep-alive,
# /protected 200/403, resumption, close_notify, KeyUpdate, kernel contexts per
# connection, data_path in the access log, and ktls = off on the relay.
# The checks are in gateway_ktls.py (see its docstring).
. "$(dirname "$0")/lib.sh"
VM_WORK=$VM_WORK /usr/bin/python3 tests/vm/gateway_ktls.py
