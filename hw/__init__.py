"""Amaranth gateware of the accelerator. Implements the contract in :mod:`mmfree.host` (numeric formats and tables,
packing); imports nothing else from the host side, and nothing from :mod:`mmfree.sim`."""
