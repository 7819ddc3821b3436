"""Stages of an execution after its run: the test stage (published, checked) and the prod stage
(merged, watched), with the requirements that gate the promotion to prod and the check that a
promotion had the effect approved."""
