"""Records: the execution journal in git, the outcome index, learning from history."""
