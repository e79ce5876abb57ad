"""`python -m coord.cli ...`: how servers and tests start coord with a given interpreter."""
from coord.cli import main

main()
