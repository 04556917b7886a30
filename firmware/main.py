# main.py: start the injector firmware. Hold the trigger during boot to stay in the REPL.
import board

if board.safe_mode():
    print("mesoinject: safe mode (trigger held at boot), firmware not started")
else:
    from mesofw import app

    app.main()
