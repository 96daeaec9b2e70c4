# SPDX-License-Identifier: MIT
# The gateway's own closes on the kTLS path end with a TLS close_notify
# (RFC 8446 6.1), over TLS 1.2 and 1.3. The checks are in
# close_notify_ktls.py.
. "$(dirname "$0")/lib.sh"
VM_WORK=$VM_WORK /usr/bin/python3 tests/vm/close_notify_ktls.py
