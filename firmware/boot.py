# boot.py: runs first on every (re)boot. Motors stay disabled until the firmware enables them.
