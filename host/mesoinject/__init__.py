"""mesoinject: host library for the mesotherapy injector (protocol, client, programs, records, sim)."""

__version__ = "0.1.0"
