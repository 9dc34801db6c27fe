"""Shared test fixtures. Tests are grouped by what they need: unit/ (numpy only),
c/ (a host C compiler), cross/ (arm-none-eabi-gcc + qemu-system-arm)."""
