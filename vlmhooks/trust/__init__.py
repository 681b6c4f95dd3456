"""What makes a callback trusted: callback tokens and provider signatures."""
