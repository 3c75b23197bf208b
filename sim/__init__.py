"""cocotb benches, the virtual board and the simulator toolchain glue."""
