"""Quality loop: specifications, OOS, deviations, audit-trail review."""
