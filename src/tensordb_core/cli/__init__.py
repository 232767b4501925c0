"""The ``tensordb`` command and the programs behind its subcommands."""
