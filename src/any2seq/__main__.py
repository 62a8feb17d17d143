"""``python -m any2seq`` (and ``torchrun -m any2seq``) run the command line."""
import sys

from .cli import main

sys.exit(main())
