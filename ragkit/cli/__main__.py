"""``python -m ragkit.cli``: the same as the ``ragkit`` console script."""

from ragkit.cli.application import main

main()
