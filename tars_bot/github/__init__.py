"""tars-bot on GitHub: the API client, comment commands and who may give them."""
