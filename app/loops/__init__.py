"""Background loops: declared in one place (`main.LOOPS`), run by one `Supervisor`, with one
way to wait after a failure that never swallows cancellation (`retry_pause`)."""
