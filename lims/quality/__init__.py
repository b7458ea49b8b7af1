"""The quality loop: specifications, results judged against them, review, OOS, release rules."""
