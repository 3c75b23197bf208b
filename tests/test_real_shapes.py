# amaranth: UnusedElaboratable=no

"""Real checkpoint shapes on the virtual board: one 370M-shaped layer (H = 1024, I = 2816) and a V = 32000 head,
the weights streamed behind the PHY, bit-exact with the golden device.

Slow (a Verilator build of the large board, then ~170 M simulated cycles: each token's 1.1 M weight words cross the
simulated link), so it runs only with ``MMFREE_REAL_SHAPES=1``; docs/runtime.md records its result.
"""

import os
import time

import numpy as np
import pytest

from mmfree.host.compiler import CORES, compile_model
from mmfree.host.hf_import import import_hf
from mmfree.host.model import ModelConfig
from mmfree.host.runtime import Accelerator
from mmfree.host.synthetic import write_hf_checkpoint
from mmfree.host.transport import SIM_REPLY_TIMEOUT, SocketTransport
from mmfree.sim.boards import BOARDS

pytestmark = pytest.mark.skipif(not os.environ.get("MMFREE_REAL_SHAPES"),
                                reason="slow: set MMFREE_REAL_SHAPES=1 to run the real-shapes test")

CONFIG = ModelConfig(vocab_size=32000, hidden_size=1024, num_layers=1, intermediate_size=2816)
PROMPT, NEW_TOKENS = [31999], 1


def run(acc, program):
    """Load, generate, read back: ``(tokens, state, (logits, scale), slot X)``."""
    acc.load(program)
    tokens = list(acc.generate(PROMPT, NEW_TOKENS))
    return tokens, acc.read("state", 0), acc.read("logits"), acc.read("slot", 0)


@pytest.mark.filterwarnings("ignore:.*no tokenizer.json")
def test_370m_layer_and_32000_head_streamed(tmp_path, capsys):
    write_hf_checkpoint(tmp_path / "hf", CONFIG, dtype="bf16", seed=11)
    program = compile_model(import_hf(tmp_path / "hf"), CORES["large"], stream=True)
    with Accelerator.open("golden://large", progress=False) as golden:
        want = run(golden, program)
    board = BOARDS["large"].virtual_board()
    with board.serve(progress=print) as running:
        transport = SocketTransport(running.connect(), reply_timeout=SIM_REPLY_TIMEOUT)
        with Accelerator(transport, progress=False) as acc:
            start = time.perf_counter()
            got = run(acc, program)
            wall = time.perf_counter() - start
            stats = acc.stats
    assert got[0] == want[0]
    for (values, scale), (want_values, want_scale) in zip(got[1:], want[1:]):
        np.testing.assert_array_equal(values, want_values)
        assert scale == want_scale
    assert len(got[2][0]) == CONFIG.vocab_size and len(got[1][0]) == CONFIG.hidden_size
    with capsys.disabled():
        print(f"\nsim://large, H={CONFIG.hidden_size} I={CONFIG.intermediate_size} V={CONFIG.vocab_size}, "
              f"{program.pass_length:,} words streamed per token: tokens {got[0]} equal golden://large; "
              f"{running.stats['cycles']:,} cycles in {running.stats['seconds']:.0f} s "
              f"({running.stats['cycles_per_second'] / 1e6:.2f} M cycles/s), {wall:.0f} s wall, "
              f"{stats.bytes_sent:,} bytes sent")
