"""Change Validator: nox checks and their cache, culprit search, quick checks, healing, benefits."""
