"""Everything that runs on the CPU: model, numerics, packing, container, compiler, runtime, CLI.

Nothing in this package imports Amaranth or cocotb at import time; commands that build or simulate import
those inside the command.
"""
