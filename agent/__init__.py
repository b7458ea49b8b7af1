"""The bench PC's program: the station agent and its print loop; it reaches lims over HTTP only."""
