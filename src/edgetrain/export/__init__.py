"""Export: generated C99 training code for microcontrollers, and its verification against
the int8 engine (Deutel et al. 2024, fully quantized training on Cortex-M; docs/deploy.md).

``exporter.export_project(model, device, out, policy=...)``  the C project (``edgetrain export``)
``verify.verify(project, target, steps)``                    C vs Python, bit for bit (``edgetrain verify``)
``emit.emit(int8_model, ExportConfig(...))``                 model.c / model.h text
``toolchains``  host cc and arm-none-eabi-gcc per core (one flags table, strict C99)
``qemu``        run an ELF on an emulated Cortex-M: semihosting, exit code, timeout, instruction
                counts and per-function profiles from the project's own TCG plugin
``runner``      build + run a C program on any target with files in one work folder
``sources``     the C runtime (package data) and the device's linker script
"""
