"""Amaranth gateware of the accelerator. Implements the contract in :mod:`mmfree.host`; imports nothing from it."""
