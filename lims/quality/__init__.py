"""The quality loop: specifications, results judged against them, review, OOS, deviations,
audit-trail review, release rules."""
