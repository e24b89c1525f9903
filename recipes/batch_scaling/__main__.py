"""``python -m recipes.batch_scaling``: runs the study (see ``main.py``)."""

from . import main

__doc__ = main.__doc__  # What absl prints as the usage text (``--help``, flag errors).

if __name__ == "__main__":
    main.run()
