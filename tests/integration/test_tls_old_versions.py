# SPDX-License-Identifier: MIT
"""TLS 1.0 and 1.1 are refused by the SERVER (protocol_version alert),
while TLS 1.2 and 1.3 handshakes succeed. The client lowers its own
security level (DEFAULT:@SECLEVEL=0) so that it really offers the old
versions and the refusal is the gateway's, not Debian's client policy."""

import re

import pytest

from helpers import s_client

OLD = ["-cipher", "DEFAULT:@SECLEVEL=0"]


@pytest.mark.parametrize("flag", ["-tls1", "-tls1_1"])
def test_old_version_refused(gateway, certs, flag):
    rc, out = s_client(gateway.port, certs, flag, *OLD)
    assert rc != 0, out
    assert "no protocols available" not in out, "the client did not offer " + flag
    assert "alert protocol version" in out, out
    assert not re.search(r"New, TLSv1(\.1)?, Cipher is (?!\(NONE\))", out), out


@pytest.mark.parametrize("flag,proto", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_current_versions_accepted(gateway, certs, flag, proto):
    rc, out = s_client(gateway.port, certs, flag)
    assert rc == 0, out
    assert f"New, {proto}, Cipher is" in out, out
    assert "Verify return code: 0 (ok)" in out, out
