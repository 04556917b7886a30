# Runs on MicroPython with the target's heap: the heap each module of the image holds once imported
# (its code, constants, qstrs and module globals), in an order where a module's imports come before it
# ($MESOFW_MODULES, comma-separated, from the host: the unix port crashes on an argv item of 256 bytes or
# more), so each figure is that module's own. argv[1]: the flash folder.
# Built-in modules (os, struct, ...) are in ROM on a board and cost nothing here either.
import gc
import json
import os
import sys

os.chdir(sys.argv[1])
out = {}
gc.collect()
start = gc.mem_alloc()
for name in os.getenv("MESOFW_MODULES").split(","):
    if name in sys.modules:  # imported by a module before it (crc_viper by crc): counted there
        continue
    gc.collect()
    before = gc.mem_alloc()
    __import__(name)
    gc.collect()
    out[name] = gc.mem_alloc() - before
gc.collect()
print(json.dumps({"modules": out, "total": gc.mem_alloc() - start, "heap": gc.mem_alloc() + gc.mem_free()}))
