"""`python -m pgfeed`: the same as the `pgfeed` command."""

from pgfeed.cli import main

main()
