# main.py: start the injector firmware, or service mode (the REPL): power up with the E-stop
# pressed and the trigger held 3 s, or the protocol's REPL command (in pairing mode). Service mode
# erases the command key first: pair the device again afterwards (mesofw/safemode.py).
try:
    import board
    from mesofw import auth, safemode

    if safemode.repl_requested():
        safemode.erase_key(auth.KEY_FILE)
        print("mesoinject: REPL requested over the link, firmware not started; key erased: pair again")
    elif safemode.gesture_held(board.safe_mode):
        safemode.erase_key(auth.KEY_FILE)
        print("mesoinject: service mode (E-stop + trigger at power-up), firmware not started; key erased: pair again")
    else:
        from mesofw import app

        app.main()
except BaseException as e:
    # a firmware that fails (even at import: out of memory) never leaves the REPL open with the
    # command key on flash: it says why on the serial port, then waits, unfed, for the watchdog
    # (started with the board) to restart it
    import sys
    from time import sleep_ms

    sys.print_exception(e)
    while True:
        sleep_ms(100)
