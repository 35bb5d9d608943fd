"""Stateful fakes of cloud APIs that have no usable emulator, held to the real contracts."""
