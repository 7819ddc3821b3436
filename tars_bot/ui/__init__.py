"""What people see: the terminal, GitHub Markdown, and untrusted text made safe for both."""
