"""`tars-bot init`: set a repository up for tars-bot, and check that set-up."""
