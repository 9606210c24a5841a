"""Sub-commands of ``tcplab``: each module has NAME, HELP, configure(parser), execute(args)."""
