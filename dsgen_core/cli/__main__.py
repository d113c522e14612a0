"""``python -m dsgen_core.cli``: the ``dsgen`` command (imported by its package name, which the commands register on)."""

from dsgen_core.cli.main import main

main()
