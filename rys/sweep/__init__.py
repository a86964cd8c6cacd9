"""The sweep: config spaces, search strategies, the materialize -> serve -> score loop, the results store,
corrected rankings, held-out confirmation, plots, exports."""

from rys.errors import RysError


class SweepError(RysError):
    """A sweep that cannot run or a results file that cannot be read as asked."""
