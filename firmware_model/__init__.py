"""What the array's firmware does around the data: the Group Manager CLI, the control channel to
a running server, and the ``array-sim`` command."""
