"""The command line: argument parsing in ``main``, each command in ``commands``."""
