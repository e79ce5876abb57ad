"""A member's clock refresh reaches its Zab peer, not only its core.

Messages carry no time: the peer stamps what they carry with its own clock (a PONG's session
touches, a learner's last_heard). That clock moved only on the 10 ms tick, so after a loop stall of
S ms the PONGs read before the next tick were stamped S ms in the past, while the expiry check read
the core's fresh clock: the leader expired those sessions S ms early (issue 17, sessions lost at
scale with the leader's loop stalled). A real EnsembleNode, its loop held as a stall would."""
from __future__ import annotations

import asyncio
import time

from coord.aio.ensemble_node import EnsembleNode, mono_ms
from coord.aio.zoocfg import load
from tests.ensemble.test_write_hops import _config
from tests.support.ensemble import _free_ports


def test_input_after_a_stall_is_stamped_with_the_current_time(tmp_path):
    async def main():
        node = EnsembleNode(load(_config(tmp_path, 1, _free_ports(9))))
        await node.start()
        try:
            await asyncio.sleep(0.05)
            time.sleep(0.3)                        # the loop held: no tick meanwhile
            before = mono_ms()
            node.tick_clock()                      # what every peer input does first (_fresh)
            assert node.core.mono_ms >= before
            assert node.peer.mono_ms == node.core.mono_ms, (node.peer.mono_ms, node.core.mono_ms)
        finally:
            await node.stop()

    asyncio.run(asyncio.wait_for(main(), 60))
