"""cocotb test modules, one per gateware unit.

Each module runs inside the simulator, launched by :func:`mmfree.sim.runner.run_bench`, and compares its unit
with the host-side contract. :func:`params` gives it the parameters the launching test passed.
"""

import json
import os

__all__ = ["PARAMS_ENV", "params"]

#: environment variable that carries a bench's parameters, as a JSON object
PARAMS_ENV = "MMFREE_BENCH_PARAMS"


def params():
    """The parameters of this bench run.

    Returns
    -------
    dict
        The ``params`` given to :func:`~mmfree.sim.runner.run_bench`; empty when none were.
    """
    return json.loads(os.environ.get(PARAMS_ENV) or "{}")
