"""Safe Execution Environment: steps in worktrees, the sandbox (the one door for
untrusted processes), processes, hand-off bundles."""
