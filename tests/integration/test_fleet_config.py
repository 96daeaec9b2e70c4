# SPDX-License-Identifier: MIT
"""`mtlsgw -t` on [fleet] and the fleet limits: a good fleet config
passes; bad redis addresses, several addresses without sentinel_master,
fleet limits without [fleet] or in [limits anonymous], an out-of-range
sync_interval and bad fleet_bandwidth_out values are errors naming
FILE:LINE; fleet_bandwidth_out takes the local bandwidth_out's syntax
(bytes per second, K/M/G = 1024, optional /s)."""

from redishelp import fleet_config_check as check


def test_good(tmp_path, certs, mtlsgw_bin):
    rc, out = check(tmp_path, certs,
                    "[fleet]\nredis = 127.0.0.1:6379\nsync_interval = 200ms\n"
                    "key_prefix = gw:\nhost_id = gw-1\nrequired = yes\n"
                    "[limits]\nfleet_max_conns = 10\nfleet_req_rate = 50/s\n"
                    "fleet_fail = local\n", mtlsgw_bin)
    assert rc == 0, out
    for v in ("1G", "1G/s", "512k", "1000000", "0"):
        rc, out = check(tmp_path, certs,
                        "[fleet]\nredis = 127.0.0.1:6379\n[limits]\n"
                        f"fleet_bandwidth_out = {v}\n[limits sha256:{'ab' * 32}]\n"
                        "fleet_bandwidth_out = 10M\n", mtlsgw_bin)
        assert rc == 0, (v, out)
    rc, out = check(tmp_path, certs,
                    "[fleet]\nredis = 127.0.0.1:26379\nredis = 127.0.0.2:26379\n"
                    "sentinel_master = mymaster\n", mtlsgw_bin)
    assert rc == 0, out
    rc, out = check(tmp_path, certs, "[fleet]\nredis = unix:/run/redis.sock\n",
                    mtlsgw_bin)
    assert rc == 0, out


def test_errors(tmp_path, certs, mtlsgw_bin):
    cases = [
        ("[fleet]\nredis = nowhere\n", "f.conf:8: redis = nowhere"),
        ("[fleet]\nredis = unix:relative\n", "f.conf:8: redis = unix:relative"),
        ("[fleet]\nredis = 127.0.0.1:1\nredis = 127.0.0.1:2\n",
         "set 'sentinel_master = NAME'"),
        ("[fleet]\nsync_interval = 1s\n", "f.conf:7: [fleet] needs 'redis"),
        ("[fleet]\nredis = 127.0.0.1:1\nsync_interval = 5ms\n", "f.conf:9: bad value '5ms'"),
        ("[limits]\nfleet_req_rate = 5/s\n", "fleet_* limits need a [fleet]"),
        ("[fleet]\nredis = 127.0.0.1:1\n[limits anonymous]\nfleet_max_conns = 1\n",
         "f.conf:9: fleet limits apply to certificates only"),
        ("[fleet]\nredis = 127.0.0.1:1\n[limits]\nfleet_bandwidth_out = 1T\n",
         "f.conf:10: bad value '1T' for fleet_bandwidth_out: expected a size "
         "in bytes with an optional K, M or G suffix (K = 1024) per second"),
        ("[fleet]\nredis = 127.0.0.1:1\n[limits]\nfleet_bandwidth_out = 2048G\n",
         "f.conf:10: bad value '2048G' for fleet_bandwidth_out"),
        ("[fleet]\nredis = 127.0.0.1:1\n[limits]\nfleet_bandwidth_out = 5M/m\n",
         "f.conf:10: bad value '5M/m'"),
        ("[fleet]\nredis = 127.0.0.1:1\n[limits]\nfleet_bandwidth_out = -1\n",
         "f.conf:10: bad value '-1'"),
        ("[limits]\nfleet_bandwidth_out = 1G\n", "fleet_* limits need a [fleet]"),
        ("[fleet]\nredis = 127.0.0.1:1\n[limits anonymous]\nfleet_bandwidth_out = 1M\n",
         "f.conf:9: fleet limits apply to certificates only"),
        ("[limits]\nfleet_fail = maybe\n", "f.conf:8: bad value 'maybe'"),
    ]
    for text, want in cases:
        rc, out = check(tmp_path, certs, text, mtlsgw_bin)
        assert rc == 1 and want in out, (text, out)
