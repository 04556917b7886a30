# main.py: start the injector firmware. Hold the trigger during boot to stay in the REPL;
# the protocol's REPL command gets there too, for one boot (mesofw/safemode.py).
import board
from mesofw import safemode

if safemode.repl_requested():
    print("mesoinject: REPL requested over the link, firmware not started")
elif board.safe_mode():
    print("mesoinject: safe mode (trigger held at boot), firmware not started")
else:
    from mesofw import app

    app.main()
