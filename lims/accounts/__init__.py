"""Accounts: users, roles held, API tokens, browser sign-in sessions and their administration."""
