"""Export: generated C99 training code for microcontrollers, and its verification.

``toolchains`` (host cc, arm-none-eabi-gcc per core), ``qemu`` (run an ELF on an emulated
Cortex-M, count instructions), ``sources`` (the C runtime shipped as package data).
"""
