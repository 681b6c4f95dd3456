"""The operations console, in HTTP and in Chromium."""
